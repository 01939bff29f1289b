"""Opening an X11 capture: the display, the rectangle, and each extension's fallback.

Part of ``X11Capture`` (rootstream.capture.x11), kept apart because it runs
once, before the first grab: connect (and refuse Xwayland, whose root window
is not the desktop), choose the region or RandR output, learn the pixel
layout from one pixel, attach the MIT-SHM segment, and select XDAMAGE,
XFIXES cursor and XInput2 raw-motion events.  Each missing piece appends
its reason to ``fallbacks`` instead of failing.  Its attributes are the
capture's.
"""

from __future__ import annotations

import os
import select
from collections.abc import Sequence

from rootstream._native import xlib
from rootstream._native.xlib import ffi

from ..errors import CaptureError

NO_DISPLAY = "no X display: set DISPLAY or use --source test"
NO_DISPLAY_HINT = "run the host inside the desktop session (DISPLAY=:0), or --display :N"


def _bgrx_format(image) -> str | None:
    """The packed pixel format of a ZPixmap image, if we can use it as is."""
    if image.bits_per_pixel != 32 or image.byte_order != xlib.LSB_FIRST:
        return None
    masks = (image.red_mask, image.green_mask, image.blue_mask)
    return {(0xFF0000, 0xFF00, 0xFF): "BGRX", (0xFF, 0xFF00, 0xFF0000): "RGBX"}.get(masks)


class X11Setup:
    """The opening half of ``X11Capture``."""

    def _connect(self, display: str | None) -> None:
        name = display or os.environ.get("DISPLAY", "")
        if not name:
            raise CaptureError(NO_DISPLAY, hint=NO_DISPLAY_HINT, details=["DISPLAY is not set"])
        x11 = self._libs.x11
        self._display = x11.XOpenDisplay(name.encode())
        if self._display == ffi.NULL:
            self._display = None
            raise CaptureError(NO_DISPLAY, hint=NO_DISPLAY_HINT,
                               details=[f"cannot connect to X display {name!r}"])
        xlib.watch(self._display)
        self.display_name = name
        screen = x11.XDefaultScreen(self._display)
        self._root = x11.XRootWindow(self._display, screen)
        self._visual = x11.XDefaultVisual(self._display, screen)
        self._depth = x11.XDefaultDepth(self._display, screen)
        self.screen_size = (x11.XDisplayWidth(self._display, screen),
                            x11.XDisplayHeight(self._display, screen))
        self._poll = select.poll()
        self._poll.register(x11.XConnectionNumber(self._display), select.POLLIN)
        self._refuse_xwayland(name)

    def _refuse_xwayland(self, name: str) -> None:
        # Xwayland's root window holds only the X programs of a Wayland
        # desktop (black elsewhere): streaming it would look like a broken
        # capture.  Xwayland 23.1 and later announce themselves with the
        # XWAYLAND extension; older ones (Debian 12 has 22.1) name every
        # RandR output XWAYLAND0, XWAYLAND1, ...
        opcode, event, error = ffi.new("int *"), ffi.new("int *"), ffi.new("int *")
        xwayland = bool(self._libs.x11.XQueryExtension(self._display, b"XWAYLAND", opcode,
                                                       event, error))
        if not xwayland and self._libs.xrandr is not None:
            try:
                monitors = self.outputs()
            except CaptureError:  # no RandR 1.5: not Xwayland, which has it
                monitors = []
            xwayland = bool(monitors) and all(name.startswith("XWAYLAND")
                                              for name, *_ in monitors)
        if xwayland:
            raise CaptureError(f"X display {name!r} is Xwayland, which shows only X programs, "
                               "not the Wayland desktop",
                               hint="use --source portal (or auto) to capture a Wayland desktop")

    def _choose_rectangle(self, region: Sequence[int] | None, output: str | None) -> None:
        screen_w, screen_h = self.screen_size
        if region is not None and output is not None:
            raise CaptureError("give a capture region or an output, not both")
        if output is not None:
            region = self._output_rectangle(output)
        if region is None:
            region = (0, 0, screen_w, screen_h)
        try:
            x, y, w, h = (int(v) for v in region)
        except (TypeError, ValueError):
            raise CaptureError("capture region must be four numbers: x, y, width, height",
                               details=[f"got {region!r}"]) from None
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > screen_w or y + h > screen_h:
            raise CaptureError("capture region is outside the X screen",
                               hint="give x,y,width,height inside the screen",
                               details=[f"region {x},{y} {w}x{h}; screen {screen_w}x{screen_h}"])
        self.region = (x, y, w, h)
        self.width, self.height = w, h

    def _output_rectangle(self, output: str) -> tuple[int, int, int, int]:
        monitors = self.outputs()
        for name, x, y, w, h in monitors:
            if name == output:
                return x, y, w, h
        known = ", ".join(name for name, *_ in monitors) or "none"
        raise CaptureError(f"no X output named {output!r}", hint=f"choose one of: {known}",
                           details=[f"{name}: {w}x{h}+{x}+{y}" for name, x, y, w, h in monitors])

    def outputs(self) -> list[tuple[str, int, int, int, int]]:
        """The RandR monitors of this screen: (name, x, y, width, height)."""
        xrandr = self._libs.xrandr
        if xrandr is None:
            raise CaptureError("XRandR is not available, so outputs cannot be chosen by name",
                               hint="install libxrandr2, or give a region instead",
                               details=list(self._libs.missing))
        count = ffi.new("int *")
        monitors = xrandr.XRRGetMonitors(self._display, self._root, True, count)
        if monitors == ffi.NULL:
            raise CaptureError("the X server cannot list its outputs (RandR 1.5 missing)",
                               hint="give a region instead",
                               details=xlib.take_errors(self._display))
        found = []
        try:
            for monitor in monitors[0:count[0]]:
                atom_name = self._libs.x11.XGetAtomName(self._display, monitor.name)
                name = ffi.string(atom_name).decode(errors="replace")
                self._libs.x11.XFree(atom_name)
                found.append((name, monitor.x, monitor.y, monitor.width, monitor.height))
        finally:
            xrandr.XRRFreeMonitors(monitors)
        return found

    def _check_pixel_format(self) -> None:
        # One pixel through XGetImage tells the layout the server sends, and
        # proves the connection answers before we build anything on it.
        image = self._libs.x11.XGetImage(self._display, self._root, 0, 0, 1, 1,
                                         xlib.ALL_PLANES, xlib.ZPIXMAP)
        if image == ffi.NULL:
            raise CaptureError("the X server refused to send screen pixels",
                               details=xlib.take_errors(self._display))
        try:
            pixel_format = _bgrx_format(image)
            layout = (f"depth {image.depth}, {image.bits_per_pixel} bits per pixel, masks "
                      f"{image.red_mask:#x}/{image.green_mask:#x}/{image.blue_mask:#x}")
        finally:
            self._libs.x11.XDestroyImage(image)
        if pixel_format is None:
            raise CaptureError("unsupported X pixel format",
                               hint="run the X server at depth 24 (32 bits per pixel)",
                               details=[layout])
        self.pixel_format = pixel_format

    def _attach_shm(self) -> None:
        if not self._libs.xext.XShmQueryExtension(self._display):
            self.fallbacks.append(
                "MIT-SHM missing on the X server: XGetImage and a copy per frame")
            return
        shm = xlib.create_shm_image(self._display, self._visual, self._depth,
                                    self.width, self.height)
        if isinstance(shm, str):
            self.fallbacks.append(f"{shm}: XGetImage and a copy per frame")
            return
        self._image, self._shminfo = shm.image, shm.shminfo
        # The pixels keep the mapping alive, even past close() (a frame kept by
        # the caller stays readable).
        self._pixels = shm.pixels

    def _watch_damage(self) -> None:
        xdamage = self._libs.xdamage
        event_base = ffi.new("int *")
        error_base = ffi.new("int *")
        if xdamage is None:
            why = f"libXdamage missing ({'; '.join(self._libs.missing)})"
        elif not xdamage.XDamageQueryExtension(self._display, event_base, error_base):
            why = "XDAMAGE missing on the X server"
        else:
            self._damage = xdamage.XDamageCreate(self._display, self._root,
                                                 xlib.XDAMAGE_REPORT_BOUNDING_BOX)
            self._libs.x11.XSync(self._display, False)
            errors = xlib.take_errors(self._display)
            if not errors:
                self._damage_event = event_base[0] + xlib.XDAMAGE_NOTIFY
                self._event = ffi.new("XEvent *")
                self._dirty = True  # the first grab takes the screen as it is
                return
            self._damage = 0
            why = f"XDamageCreate failed ({errors[0]})"
        self.fallbacks.append(f"{why}: grabbing {1e9 / self._pacer.period_ns:g} times a second,"
                              " changed or not")

    def _watch_cursor(self) -> None:
        # The X server never puts the pointer in GetImage replies: XFIXES
        # gives its picture and position to draw in ourselves.  Moving it
        # damages nothing, so change-driven capture also listens for XInput2
        # raw motion (real or XTEST devices; XWarpPointer shows at the next
        # change) and XFIXES cursor-shape changes.
        xfixes, xi, x11 = self._libs.xfixes, self._libs.xi, self._libs.x11
        event_base, error_base = ffi.new("int *"), ffi.new("int *")
        if xfixes is None or not xfixes.XFixesQueryExtension(self._display, event_base,
                                                             error_base):
            self.fallbacks.append("cursor not shown: XFIXES missing")
            return
        self._cursor = True
        if not self._damage:
            return
        xfixes.XFixesSelectCursorInput(self._display, self._root,
                                       xlib.XFIXES_DISPLAY_CURSOR_NOTIFY_MASK)
        self._cursor_event = event_base[0] + xlib.XFIXES_CURSOR_NOTIFY
        opcode = ffi.new("int *")
        major, minor = ffi.new("int *", 2), ffi.new("int *", 0)
        if (xi is None
                or not x11.XQueryExtension(self._display, b"XInputExtension", opcode,
                                           event_base, error_base)
                or xi.XIQueryVersion(self._display, major, minor) != 0):
            self.fallbacks.append("XInput2 missing: a pointer that moves over a still"
                                  " screen shows at the next screen change")
            return
        mask = ffi.new("unsigned char[]", xlib.XI_RAW_MOTION // 8 + 1)
        mask[xlib.XI_RAW_MOTION // 8] = 1 << (xlib.XI_RAW_MOTION % 8)
        masks = ffi.new("XIEventMask *", {"deviceid": xlib.XI_ALL_MASTER_DEVICES,
                                          "mask_len": len(mask), "mask": mask})
        xi.XISelectEvents(self._display, self._root, masks, 1)
        x11.XSync(self._display, False)
        self._xi_opcode = opcode[0]


__all__ = ["NO_DISPLAY", "NO_DISPLAY_HINT", "X11Setup"]
