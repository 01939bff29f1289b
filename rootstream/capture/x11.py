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

import time
from collections.abc import Sequence

import numpy as np

from rootstream._native import xlib
from rootstream._native.xlib import ffi

from ..errors import CaptureError
from ..frame import CapturedFrame
from .base import CaptureBackend, ChangeRateCap, Pacer, deadline_after
from .x11_setup import NO_DISPLAY, NO_DISPLAY_HINT, X11Setup  # noqa: F401 - tests name them here

LOST_DISPLAY = "lost the connection to the X display"
_POLL_FOREVER = -1


class X11Capture(X11Setup, CaptureBackend):
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
