#!/usr/bin/env bash
# The main job, from a fresh Debian/Ubuntu machine: set up, then stream this
# machine to itself: `rootstream host` and `rootstream connect` on loopback.
# The host shares the screen when there is one ($DISPLAY), the moving test
# pattern otherwise; the client shows it in a window when it can, or decodes
# and counts (`--present null`) on a headless machine.  Both print their live
# per-stage latency figures.  Usage: bash scripts/run.sh [SECONDS] (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

duration="${1:-20}"
port="${ROOTSTREAM_PORT:-47100}"
present=null
[ -n "${DISPLAY:-}" ] && present=auto

.venv/bin/rootstream host --bind 127.0.0.1 --port "$port" --stats-interval 2 &
host_pid=$!
trap 'kill "$host_pid" 2>/dev/null || true; wait "$host_pid" 2>/dev/null || true' EXIT
sleep 1
kill -0 "$host_pid" 2>/dev/null || { echo "run: the host did not start" >&2; exit 1; }
.venv/bin/rootstream connect "127.0.0.1:$port" --present "$present" --seconds "$duration" \
  --stats-interval 2 --same-clock
