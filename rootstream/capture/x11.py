"""X11 screen capture: MIT-SHM for the pixels, XDAMAGE for when to take them.

With MIT-SHM the X server copies the screen straight into a SysV shared
memory segment that is also our frame buffer (a numpy array over the mapping):
no bytes cross the socket and nothing is allocated per frame.  With XDAMAGE,
``grab()`` sleeps in ``poll()`` on the X connection until the server reports
that the captured rectangle changed, then grabs at once, at most about ``fps``
times a second (base.ChangeRateCap: 10 % over, so that a source at exactly
``fps`` is never made to wait): a still desktop costs nothing.

The X server leaves the pointer out of its pictures, so with ``cursor=True``
each frame gets the pointer drawn in from XFIXES (picture, hotspot and
position, one round trip), and pointer motion (XInput2 raw events) and shape
changes wake a change-driven grab just as screen damage does.

Xwayland is refused with a pointer to the portal: its root window shows the
X programs of a Wayland desktop and nothing else.

Each missing piece has a fallback, recorded in ``fallbacks`` with the reason:
no MIT-SHM (remote display, extension disabled, segment refused) means
XGetImage through the socket plus one copy; no XDAMAGE means grabbing on an
``fps`` timer whether or not anything changed; no XFIXES means no pointer.

The shared segment is marked for removal as soon as both sides are attached,
so the kernel frees it when the last mapping goes, even if this process is
killed.  Our mapping is released when the last array viewing it is collected,
so a frame kept past ``close()`` stays readable instead of crashing.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Sequence

import numpy as np

from rootstream._native import xlib
from rootstream._native.xlib import ffi

from ..errors import CaptureError
from ..frame import CapturedFrame
from .base import CaptureBackend, ChangeRateCap, Pacer, deadline_after

NO_DISPLAY = "no X display: set DISPLAY or use --source test"
NO_DISPLAY_HINT = "run the host inside the desktop session (DISPLAY=:0), or --display :N"
LOST_DISPLAY = "lost the connection to the X display"
_POLL_FOREVER = -1


def _bgrx_format(image) -> str | None:
    """The packed pixel format of a ZPixmap image, if we can use it as is."""
    if image.bits_per_pixel != 32 or image.byte_order != xlib.LSB_FIRST:
        return None
    masks = (image.red_mask, image.green_mask, image.blue_mask)
    return {(0xFF0000, 0xFF00, 0xFF): "BGRX", (0xFF, 0xFF00, 0xFF0000): "RGBX"}.get(masks)


class X11Capture(CaptureBackend):
    """The X screen (or a region, or one RandR output) as BGRX frames."""

    name = "x11"

    def __init__(self, display: str | None = None,
                 region: Sequence[int] | None = None, output: str | None = None,
                 fps: float = 60, use_damage: bool = True, use_shm: bool = True,
                 cursor: bool = True):
        super().__init__()
        if not 0 < fps <= 1000:
            raise CaptureError("capture frame rate must be between 0 and 1000",
                               details=[f"asked for {fps}"])
        self._libs = xlib.load()
        self._display = None
        self._image = None  # the XShmCreateImage image, when MIT-SHM is in use
        self._shminfo = None
        self._damage = 0
        self._dirty = False  # XDAMAGE said our rectangle changed since the last grab
        self._cursor = False  # draw the pointer into frames (XFIXES)
        self._cursor_event = self._xi_opcode = -1
        self._pixels: np.ndarray | None = None
        self._pacer = Pacer(fps)
        try:
            self._connect(display)
            self._choose_rectangle(region, output)
            self._check_pixel_format()
            if use_shm:
                self._attach_shm()
            else:
                self.fallbacks.append("MIT-SHM off (use_shm=False): XGetImage and a copy per frame")
            if self._image is None:
                self._pixels = np.empty((self.height, self.width * 4), dtype=np.uint8)
            if use_damage:
                self._watch_damage()
            else:
                self.fallbacks.append(
                    f"XDAMAGE off (use_damage=False): grabbing {fps:g} times a second")
            if self._damage:
                # Changes, not a timer, set the pace: cap their rate without
                # a grid of slots (see ChangeRateCap).
                self._pacer = ChangeRateCap(fps)
            if cursor:
                self._watch_cursor()
        except BaseException:
            self.close()
            raise

    # -- opening -------------------------------------------------------------

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

    # -- grabbing ------------------------------------------------------------

    def grab(self, timeout: float | None = None, *, force: bool = False) -> CapturedFrame | None:
        if self._display is None:
            raise CaptureError("the X11 capture is closed")
        deadline = deadline_after(timeout)
        if self._damage and not force and not self._wait_for_damage(deadline):
            return None
        slot = self._pacer.wait(deadline)
        if slot is None:
            return None
        if self._damage:
            # Reset before reading: a change landing during the read raises a
            # new event, so the next grab picks it up instead of losing it.
            self._libs.xdamage.XDamageSubtract(self._display, self._damage, 0, 0)
            self._dirty = False
        # Stamped as the read is asked for: the picture is the screen from this
        # moment on, and the read itself (0.5 ms at 720p) is then host
        # processing, as drawing the test pattern is.
        captured = time.monotonic_ns()
        self._read_pixels()
        if self._cursor:
            self._draw_cursor()
        self._pacer.taken(slot, captured)
        return self._frame(self._pixels, captured)

    def _read_pixels(self) -> None:
        x, y, w, h = self.region
        x11 = self._libs.x11
        if self._image is not None:
            ok = self._libs.xext.XShmGetImage(self._display, self._root, self._image, x, y,
                                              xlib.ALL_PLANES)
            self._raise_if_failed(ok)
            return
        image = x11.XGetImage(self._display, self._root, x, y, w, h, xlib.ALL_PLANES,
                              xlib.ZPIXMAP)
        self._raise_if_failed(image != ffi.NULL)
        try:
            rows = np.frombuffer(ffi.buffer(image.data, image.bytes_per_line * h), dtype=np.uint8)
            np.copyto(self._pixels, rows.reshape(h, image.bytes_per_line)[:, : w * 4])
        finally:
            x11.XDestroyImage(image)

    def _draw_cursor(self) -> None:
        image = self._libs.xfixes.XFixesGetCursorImage(self._display)
        if image == ffi.NULL:
            xlib.take_errors(self._display)
            return
        try:
            rx, ry, rw, rh = self.region
            left, top = image.x - image.xhot - rx, image.y - image.yhot - ry
            w, h = image.width, image.height
            x0, y0 = max(left, 0), max(top, 0)
            x1, y1 = min(left + w, rw), min(top + h, rh)
            if x0 >= x1 or y0 >= y1:
                return
            # One premultiplied ARGB pixel per C long: the low 32 bits, which
            # on a little-endian machine are the bytes B, G, R, A.
            longs = np.frombuffer(ffi.buffer(image.pixels, w * h * ffi.sizeof("long")),
                                  dtype=np.uint64).reshape(h, w)
            bgra = (longs[y0 - top:y1 - top, x0 - left:x1 - left] & 0xFFFFFFFF).astype(
                "<u4").view(np.uint8).reshape(y1 - y0, x1 - x0, 4).astype(np.uint16)
            under = self._pixels[y0:y1, x0 * 4:x1 * 4].reshape(y1 - y0, x1 - x0, 4)
            keep = 255 - bgra[..., 3:4]
            blended = bgra[..., :3] + (under[..., :3] * keep + 127) // 255
            under[..., :3] = np.minimum(blended, 255)
        finally:
            self._libs.x11.XFree(image)

    def _raise_if_failed(self, ok: bool) -> None:
        if xlib.connection_lost(self._display):
            raise CaptureError(LOST_DISPLAY, hint="the X server exited or the session ended")
        errors = xlib.take_errors(self._display)
        if not ok or errors:
            raise CaptureError("the X server refused to send the screen",
                               hint="the screen may have changed size: open the capture again",
                               details=errors)

    def _wait_for_damage(self, deadline: int | None) -> bool:
        """Block until the captured rectangle changed (True) or ``deadline`` passed."""
        while True:
            self._take_damage_events()
            if self._dirty:
                return True
            if xlib.connection_lost(self._display):
                raise CaptureError(LOST_DISPLAY, hint="the X server exited or the session ended")
            if deadline is None:
                wait_ms = _POLL_FOREVER
            else:
                remaining = deadline - time.monotonic_ns()
                if remaining <= 0:
                    return False
                wait_ms = -(-remaining // 1_000_000)
            self._poll.poll(wait_ms)

    def _take_damage_events(self) -> None:
        x11 = self._libs.x11
        elsewhere = False
        # XPending reads what the socket holds without blocking; events may
        # already be queued from an earlier reply, so it comes before poll().
        while x11.XPending(self._display):
            x11.XNextEvent(self._display, self._event)
            if self._event.type == self._cursor_event or self._is_raw_motion(self._event):
                self._dirty = True  # the pointer moved or changed shape
            if self._event.type != self._damage_event:
                continue
            area = ffi.cast("XDamageNotifyEvent *", self._event).area
            if self._overlaps(area.x, area.y, area.width, area.height):
                self._dirty = True
            else:
                elsewhere = True
        if elsewhere and not self._dirty:
            # Forget changes outside our rectangle so the next event's bounding
            # box says something about it again.
            self._libs.xdamage.XDamageSubtract(self._display, self._damage, 0, 0)
            x11.XFlush(self._display)

    def _is_raw_motion(self, event) -> bool:
        if event.type != xlib.GENERIC_EVENT:
            return False
        cookie = ffi.cast("XGenericEventCookie *", event)
        return cookie.extension == self._xi_opcode and cookie.evtype == xlib.XI_RAW_MOTION

    def _overlaps(self, x: int, y: int, w: int, h: int) -> bool:
        rx, ry, rw, rh = self.region
        return x < rx + rw and rx < x + w and y < ry + rh and ry < y + h

    # -- closing -------------------------------------------------------------

    def describe(self) -> str:
        x, y, w, h = getattr(self, "region", (0, 0, 0, 0))
        method = "MIT-SHM" if self._image is not None else "XGetImage"
        trigger = "XDAMAGE" if self._damage else "timer"
        if self._cursor:
            trigger += ", cursor drawn"
        where = f"{self.display_name} {w}x{h}+{x}+{y}"
        return f"{where} {self.pixel_format} via {method}, {trigger}" + "".join(
            f"; {why}" for why in self.fallbacks)

    def close(self) -> None:
        display, self._display = self._display, None
        if display is None:
            return
        x11 = self._libs.x11
        alive = not xlib.connection_lost(display)
        if self._damage and alive:
            self._libs.xdamage.XDamageDestroy(display, self._damage)
        self._damage = 0
        if self._image is not None:
            if alive:
                self._libs.xext.XShmDetach(display, self._shminfo)
                x11.XSync(display, False)
            self._image.data = ffi.NULL  # the mapping is released with its last view
            x11.XDestroyImage(self._image)
            self._image = self._shminfo = None
        self._pixels = None
        x11.XCloseDisplay(display)
        xlib.forget(display)
