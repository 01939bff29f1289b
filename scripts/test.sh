#!/usr/bin/env bash
# Set up everything the tests need on a fresh Debian/Ubuntu machine, then run
# the whole suite.  Extra arguments go to pytest (e.g. -k protocol, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
