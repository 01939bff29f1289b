"""X11 screen capture: MIT-SHM for the pixels, XDAMAGE for when to take them.

With MIT-SHM the X server copies the screen straight into a SysV shared
memory segment that is also our frame buffer (a numpy array over the mapping):
no bytes cross the socket and nothing is allocated per frame.  With XDAMAGE,
``grab()`` sleeps in ``poll()`` on the X connection until the server reports
that the captured rectangle changed, then grabs at once, at most ``fps`` times
a second: a still desktop costs nothing.

Each missing piece has a fallback, recorded in ``fallbacks`` with the reason:
no MIT-SHM (remote display, extension disabled, segment refused) means
XGetImage through the socket plus one copy; no XDAMAGE means grabbing on an
``fps`` timer whether or not anything changed.

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

from ..errors import CaptureError
from ..frame import CapturedFrame
from . import xlib
from .base import CaptureBackend, Pacer, deadline_after
from .xlib import ffi

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


def _detach(address) -> None:
    xlib.load().libc.shmdt(address)


class X11Capture(CaptureBackend):
    """The X screen (or a region, or one RandR output) as BGRX frames."""

    name = "x11"

    def __init__(self, display: str | None = None,
                 region: Sequence[int] | None = None, output: str | None = None,
                 fps: float = 60, use_damage: bool = True, use_shm: bool = True):
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

    def _choose_rectangle(self, region: Sequence[int] | None, output: str | None) -> None:
        screen_w, screen_h = self.screen_size
        if region is not None and output is not None:
            raise CaptureError("give a capture region or an output, not both")
        if output is not None:
            region = self._output_rectangle(output)
        if region is None:
            region = (0, 0, screen_w, screen_h)
        x, y, w, h = (int(v) for v in region)
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
        x11, xext, libc = self._libs.x11, self._libs.xext, self._libs.libc
        if not xext.XShmQueryExtension(self._display):
            self.fallbacks.append(
                "MIT-SHM missing on the X server: XGetImage and a copy per frame")
            return
        shminfo = ffi.new("XShmSegmentInfo *")
        image = xext.XShmCreateImage(self._display, self._visual, self._depth, xlib.ZPIXMAP,
                                     ffi.NULL, shminfo, self.width, self.height)
        if image == ffi.NULL:
            self.fallbacks.append("XShmCreateImage failed: XGetImage and a copy per frame")
            return
        size = image.bytes_per_line * image.height
        shmid = libc.shmget(xlib.IPC_PRIVATE, size, xlib.IPC_CREAT | 0o600)
        address = ffi.NULL if shmid < 0 else libc.shmat(shmid, ffi.NULL, 0)
        errno = ffi.errno
        if shmid >= 0:
            # Marked for removal now: the kernel frees it once every mapping is
            # gone, however this process ends.  Linux still lets the X server attach.
            libc.shmctl(shmid, xlib.IPC_RMID, ffi.NULL)
        if address == ffi.NULL or int(ffi.cast("intptr_t", address)) == -1:
            x11.XDestroyImage(image)
            self.fallbacks.append(f"cannot create a shared memory segment ({os.strerror(errno)}):"
                                  " XGetImage and a copy per frame")
            return
        mapping = ffi.gc(ffi.cast("char *", address), _detach)
        shminfo.shmid = shmid
        shminfo.shmaddr = mapping
        shminfo.readOnly = False
        image.data = mapping
        xext.XShmAttach(self._display, shminfo)
        x11.XSync(self._display, False)
        errors = xlib.take_errors(self._display)
        if errors:
            image.data = ffi.NULL  # the mapping is ours to release, not Xlib's to free()
            x11.XDestroyImage(image)
            self.fallbacks.append(f"the X server could not attach our shared memory ({errors[0]};"
                                  " remote display?): XGetImage and a copy per frame")
            return
        self._image, self._shminfo = image, shminfo
        self._pixels = np.frombuffer(ffi.buffer(mapping, size), dtype=np.uint8).reshape(
            image.height, image.bytes_per_line)

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
        self._read_pixels()
        captured = time.monotonic_ns()
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

    def _overlaps(self, x: int, y: int, w: int, h: int) -> bool:
        rx, ry, rw, rh = self.region
        return x < rx + rw and rx < x + w and y < ry + rh and ry < y + h

    # -- closing -------------------------------------------------------------

    def describe(self) -> str:
        x, y, w, h = getattr(self, "region", (0, 0, 0, 0))
        method = "MIT-SHM" if self._image is not None else "XGetImage"
        trigger = "XDAMAGE" if self._damage else "timer"
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
