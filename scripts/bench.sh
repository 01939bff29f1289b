#!/usr/bin/env bash
# Set up the benchmarks' extra baselines, then run the pytest-benchmark suites
# (each measures against a named baseline in the same run).  The end-to-end
# and glass-to-glass comparisons with GStreamer run as scripts: see
# docs/BENCHMARKS.md.  Extra arguments go to pytest (e.g. bench/bench_protocol.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export ROOTSTREAM_EXTRAS="test,bench"
source scripts/setup.sh

# GStreamer: the end-to-end baseline pipeline (x264enc is in plugins-ugly,
# avdec_h264 in gstreamer1.0-libav, ximagesrc/ximagesink in gstreamer1.0-x).
GST_PACKAGES=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
              gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-x)
missing=()
for pkg in "${GST_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

if [ "$#" -eq 0 ]; then
  set -- bench/bench_protocol.py bench/bench_convert.py bench/bench_fec.py \
         bench/bench_crypto.py bench/bench_codec.py bench/bench_capture.py
fi
exec .venv/bin/python -m pytest -p no:cacheprovider --benchmark-only "$@"
