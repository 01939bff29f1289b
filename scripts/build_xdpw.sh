#!/usr/bin/env bash
# Build xdg-desktop-portal-wlr for the Wayland tests, into a private prefix in
# a cache outside the clone; never over the system's package, which a user's
# desktop may be running.
#
# Why build it: Debian 12's 0.7.0 refuses to start a screencast when the
# compositor offers no DMA-BUF format (upstream issue 289), and the test
# desktop is sway on pixman with no GPU, so it offers shared memory only.
# Debian's own source package with that one check removed works.
#
# Prints the prefix on stdout.  Idempotent: a finished build is reused.
set -euo pipefail

VERSION=0.7.0-1
CACHE="${ROOTSTREAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rootstream}"
PREFIX="$CACHE/xdpw-$VERSION-shm"
BINARY="$PREFIX/libexec/xdg-desktop-portal-wlr"
if [ -x "$BINARY" ]; then
  echo "$PREFIX"
  exit 0
fi

WORK="$CACHE/xdpw-build"
rm -rf "$WORK"
mkdir -p "$WORK/lists/partial"
cd "$WORK"
# A private source list and package index: the system's apt configuration is
# left as it is (it may have no deb-src line at all).  The source lines are the
# machine's own binary lines turned into deb-src, so the same mirror (or
# proxy) that installs its packages serves the source too.
mkdir -p "$WORK/parts"
python3 - "$WORK/parts" <<'PY'
import glob, re, sys
out = sys.argv[1]
one_line = []
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    one_line += [re.sub(r"^deb(\s)", r"deb-src\1", l) for l in lines if re.match(r"deb\s", l)]
open(f"{out}/system.list", "w").write("\n".join(one_line) + "\n")
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    text = open(path).read()
    text = re.sub(r"^Types:.*$", "Types: deb-src", text, flags=re.M)
    open(f"{out}/{path.rsplit('/', 1)[1]}", "w").write(text)
PY
mkdir -p "$WORK/cache/archives/partial"
APT=(apt-get -q -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$WORK/parts"
     -o Dir::State::Lists="$WORK/lists" -o Dir::Cache="$WORK/cache" -o Debug::NoLocking=1)
# apt drops to the _apt user to download, who cannot write into our cache.
[ "$(id -u)" -ne 0 ] || APT+=(-o APT::Sandbox::User=root)
"${APT[@]}" update >&2
"${APT[@]}" source --download-only "xdg-desktop-portal-wlr=$VERSION" >&2
dpkg-source -x "xdg-desktop-portal-wlr_$VERSION.dsc" src >&2

# The one change: start_screencast() gives up when screencopy offered no
# DMA-BUF format (screencast_version >= 3 and DMABUF format invalid); keep
# only its shared-memory half of the test.
FILE=src/src/screencast/screencast.c
python3 - "$FILE" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
pattern = re.compile(
    r"format == DRM_FORMAT_INVALID \|\|\s*\(cast->ctx->state->screencast_version >= 3 &&"
    r"\s*cast->screencopy_frame_info\[DMABUF\]\.format == DRM_FORMAT_INVALID\)\)")
text, count = pattern.subn("format == DRM_FORMAT_INVALID)", text)
if count != 1:
    sys.exit(f"build_xdpw: the DMA-BUF check in {path} was not found; has the source changed?")
open(path, "w").write(text)
PY

meson setup build src --prefix="$PREFIX" -Dman-pages=disabled -Dsystemd=disabled >&2
ninja -C build install >&2
rm -rf "$WORK"
echo "$PREFIX"
