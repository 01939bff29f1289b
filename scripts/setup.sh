#!/usr/bin/env bash
# Shared set-up for scripts/test.sh and scripts/run.sh, on a fresh Debian or
# Ubuntu machine: the Debian packages the tests and the demo use, then a
# virtual environment in .venv with rootstream installed in editable mode
# (which also compiles rootstream/_native).  Safe to run again: it installs
# only what is missing.
set -euo pipefail

# xvfb, xdotool, x11-utils, x11-xserver-utils: real X displays for capture,
#   presentation and input tests; xclip: the other application of the
#   clipboard tests (copies and pastes on each display).
# libx11-6 libxext6 libxdamage1 libxfixes3 libxi6 libxrandr2 libxtst6: the
#   X11 capture (MIT-SHM, XDAMAGE, pointer) and XTEST injection, loaded by cffi.
# libdrm-dev, linux-libc-dev, libx*-dev, gcc: tests compile the kernel's DRM
#   and the X headers to check the hand-declared structures against them.
# libyuv0: the colour-conversion benchmark's baseline.
# pulseaudio, pulseaudio-utils: a null-sink sound server for the audio tests.
# iproute2, nftables: network namespaces, tc rate caps and random drops.
# pipewire-bin, wireplumber, dbus-daemon, libpipewire-0.3-0: a private PipeWire
#   session for the PipeWire stream tests; libpipewire-0.3-dev, libspa-0.2-dev,
#   pkg-config: tests compile SPA's headers to check the hand-declared structs
#   and PODs; gstreamer1.0-tools, -plugins-base, -pipewire: a producer node that
#   is not built on our own binding (videotestsrc ! pipewiresink).
# sway, xwayland, pipewire, dbus, xdg-desktop-portal: the real Wayland desktop
#   of the portal tests (tests/wayland_desktop.py); libwayland-dev,
#   libwayland-bin, wayland-protocols: its painter client; meson ... libsystemd-dev:
#   building xdg-desktop-portal-wlr (scripts/build_xdpw.sh).
# qemu-system-x86, busybox-static, make, xz-utils, libcap2-bin: the test VM
#   (tests/vm/): QEMU, its initramfs, building vkms.ko against the Debian
#   kernel's headers, setcap on helpers inside the guest.
# systemd: systemd-analyze verify checks the user unit `rootstream service
#   install` writes (tests/test_service_unit.py); no manager is started.
# wl-clipboard: wl-copy/wl-paste, the other application of the Wayland
#   clipboard tests (tests/test_clipboard_wayland.py) on the headless sway.
# libgl1-mesa-dri: Mesa's llvmpipe behind Xvfb's GLX, which SDL's OpenGL
#   renderer runs on; tests/test_present_auto.py checks that auto sees it.
APT_PACKAGES=(
  python3-venv python3-dev gcc fonts-dejavu-core libgl1-mesa-dri
  xvfb xdotool x11-utils x11-xserver-utils xclip
  libx11-6 libxext6 libxdamage1 libxfixes3 libxi6 libxrandr2 libxtst6
  libx11-dev libxext-dev libxdamage-dev libxfixes-dev libxi-dev libxrandr-dev libxtst-dev
  libdrm-dev linux-libc-dev libyuv0
  pulseaudio pulseaudio-utils
  iproute2 nftables
  pipewire-bin wireplumber dbus-daemon libpipewire-0.3-0 libpipewire-0.3-dev libspa-0.2-dev
  pkg-config gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-pipewire
  sway xwayland pipewire dbus xdg-desktop-portal
  libwayland-dev libwayland-bin wayland-protocols
  meson ninja-build dpkg-dev libgbm-dev libinih-dev libsystemd-dev
  qemu-system-x86 busybox-static make xz-utils libcap2-bin
  systemd
  wl-clipboard
)
EXTRAS="${ROOTSTREAM_EXTRAS:-test}"

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# Debian 12's xdg-desktop-portal-wlr cannot screencast a GPU-less sway: the
# tests use a build of its source package with that one check removed, kept in
# ~/.cache/rootstream (never installed over the system's package).
bash scripts/build_xdpw.sh >/dev/null

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
echo "setup: installing rootstream[$EXTRAS] into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$EXTRAS]"
