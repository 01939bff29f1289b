"""The X11 presenter: plain Xlib and MIT-SHM, for clients without a GPU.

Without a GPU, SDL renders in software and ``SDL_RenderPresent`` waits on the
X server: 12-15 ms per 720p frame on Xvfb.  Here swscale (PyAV's
``VideoReformatter``, kept between frames so its context is cached) turns the
decoded NV12/yuv420p picture into BGRX at the size of its letterbox, the rows
are copied into a SysV shared memory segment of the window's size, and one
``XShmPutImage`` hands it to the server: no pixels cross the socket.

Two segments alternate: the server may still be copying the one put last
while the next frame is converted into the other.  A segment is written only
after the server's ShmCompletion event for its previous put arrived, so a
frame is never torn by our own writes.  The segments have the window's size
and are made again when the window is resized (ConfigureNotify); the bars
around the picture are zeros (black) written once per layout.

Each missing piece falls back, with the reason in ``fallbacks_used``: no
MIT-SHM on the server (or a remote display refusing our segment) means
``XPutImage``, the pixels going through the socket.

Input for the host is read from this window by the X11 input reader on a
connection of its own (rootstream.input.x11_capture), not here; this
presenter does not select the buttons, so the reader may.
``add_event_listener`` callbacks get cffi ``XEvent *`` pointers, valid during
the call only; key events carry X keysym names (letters upper-cased, as SDL
names them), SDL modifier bits, no scancode and no repeat flag.  The stats
overlay is blended into each frame's pixels (rootstream.present.x11_overlay).

Threading: Xlib calls run on the thread that opened the presenter; another
thread gets a PresentError.
"""

from __future__ import annotations

import os
import select
import threading
import time

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from rootstream._native import xlib
from rootstream._native.xlib import ffi
from rootstream.errors import CaptureError, PresentError
from rootstream.present.base import Presenter, PresenterEvent, Rect, letterbox
from rootstream.present.x11_image import (
    ImageBuffer,
    destroy_buffers,
    pixel_format,
    plain_buffer,
    read_window,
    scale_into,
    shm_buffer,
)
from rootstream.present.x11_requests import (
    ask_fullscreen_at_map,
    create_window,
    intern_atoms,
    window_geometry,
    window_manager_running,
)
from rootstream.present.x11_window import X11WindowEvents

NO_DISPLAY = "no X display to open a window on"
NO_DISPLAY_HINT = "set DISPLAY (run inside the desktop session), or use --present null"
# Waiting longer than this for the server to finish a put means it is gone or wedged.
COMPLETION_TIMEOUT_S = 2.0
MAP_TIMEOUT_S = 2.0
SEGMENTS = 2


class X11Presenter(X11WindowEvents, Presenter):
    """A window on an X display, fed through MIT-SHM.

    ``display``: an X display name (default $DISPLAY).  The window starts at
    the stream's size, or the screen's when ``fullscreen``.  ``use_shm=False``
    sends the pixels through the socket (XPutImage), as a remote display must.
    """

    name = "x11"

    def __init__(self, *, width: int, height: int, title: str = "rootstream",
                 fullscreen: bool = False, display: str | None = None,
                 use_shm: bool = True):
        super().__init__(width=width, height=height)
        self._thread = threading.get_ident()
        self._display = None
        self._window = 0
        self._gc = None
        self._buffers: list[ImageBuffer] = []
        self._next = 0
        self._last_frame: av.VideoFrame | None = None
        self._pending: list[PresenterEvent] = []
        self._size = (0, 0)  # the window's, from the server's last ConfigureNotify
        self._mapped = False
        self._resize_pending = False  # _size changed; the buffers are of the old one
        self._overlay_lines: tuple[str, ...] = ()
        self._overlay = None  # PixelOverlay, made on first use
        self._fullscreen = False
        self._windowed_geometry: tuple[int, int, int, int] | None = None
        self._reformatter = VideoReformatter()
        self.fallbacks_used: list[str] = []
        self.use_shm = False
        try:
            self._libs = xlib.load()
        except CaptureError as exc:
            raise PresentError(str(exc), hint=exc.hint, details=exc.details) from exc
        try:
            self._connect(display, use_shm)
            self._open_window(title, fullscreen)
            self._size = self._window_geometry()[2:]
            self._make_buffers()
        except BaseException:
            self.close()
            raise

    @classmethod
    def probe(cls, display: str | None = None) -> str:
        """Empty if a window can be opened on the X display, else why not."""
        name = display or os.environ.get("DISPLAY", "")
        if not name:
            return f"{NO_DISPLAY}: DISPLAY is not set"
        try:
            libs = xlib.load()
        except CaptureError as exc:
            return "; ".join([str(exc), *exc.details])
        connection = libs.x11.XOpenDisplay(name.encode())
        if connection == ffi.NULL:
            return f"{NO_DISPLAY}: cannot connect to X display {name!r}"
        libs.x11.XCloseDisplay(connection)
        return ""

    # -- opening -------------------------------------------------------------

    def _connect(self, display: str | None, use_shm: bool) -> None:
        name = display or os.environ.get("DISPLAY", "")
        if not name:
            raise PresentError(NO_DISPLAY, hint=NO_DISPLAY_HINT, details=["DISPLAY is not set"])
        x11 = self._libs.x11
        connection = x11.XOpenDisplay(name.encode())
        if connection == ffi.NULL:
            raise PresentError(NO_DISPLAY, hint=NO_DISPLAY_HINT,
                               details=[f"cannot connect to X display {name!r}"])
        self._display = connection
        xlib.watch(connection)
        self.display_name = name
        screen = x11.XDefaultScreen(connection)
        self._root = x11.XRootWindow(connection, screen)
        self._visual = x11.XDefaultVisual(connection, screen)
        self._depth = x11.XDefaultDepth(connection, screen)
        self.screen_size = (x11.XDisplayWidth(connection, screen),
                            x11.XDisplayHeight(connection, screen))
        self._poll = select.poll()
        self._poll.register(x11.XConnectionNumber(connection), select.POLLIN)
        self._event = ffi.new("XEvent *")
        self._atoms = intern_atoms(self._libs, connection)
        self._shm_completion = -1
        if not use_shm:
            self.fallbacks_used.append("MIT-SHM off (use_shm=False): XPutImage")
        elif self._libs.xext.XShmQueryExtension(connection):
            self._shm_completion = (self._libs.xext.XShmGetEventBase(connection)
                                    + xlib.SHM_COMPLETION)
        else:
            self.fallbacks_used.append("MIT-SHM missing on the X server: XPutImage, "
                                       "the pixels through the socket")

    def _open_window(self, title: str, fullscreen: bool) -> None:
        x11, display = self._libs.x11, self._display
        wm = window_manager_running(self._libs, self._display, self._root, self._atoms)
        size = self.screen_size if fullscreen and not wm else (self.width, self.height)
        self._window, self._gc = create_window(self._libs, display, self._root, size, title,
                                               self._atoms)
        if fullscreen:
            self._fullscreen = True
            if wm:  # EWMH: an unmapped window asks through its own property
                ask_fullscreen_at_map(self._libs, display, self._window, self._atoms)
            else:
                self._windowed_geometry = (0, 0, self.width, self.height)
        x11.XMapWindow(display, self._window)
        self._wait_for(lambda: self._mapped, MAP_TIMEOUT_S, "the window was never shown")

    def _window_geometry(self) -> tuple[int, int, int, int]:
        geometry = window_geometry(self._libs, self._display, self._window)
        if geometry is None:
            self._check_connection()
            raise PresentError("the X server does not know our window",
                               details=xlib.take_errors(self._display))
        return geometry

    # -- the buffers the server takes pictures from --------------------------------

    def _make_buffers(self) -> None:
        self._free_buffers()
        self._resize_pending = False
        w, h = self._size
        self.use_shm = self._shm_completion >= 0
        for _ in range(SEGMENTS if self.use_shm else 1):
            buffer = self._shm_buffer(w, h) if self.use_shm else None
            if buffer is None:
                self.use_shm = False
                self._free_buffers()
                self._buffers = [plain_buffer(self._libs, self._display, self._visual,
                                              self._depth, w, h)]
                break
            self._buffers.append(buffer)
        self._next = 0
        self.pixel_format = pixel_format(self._buffers[0].image)

    def _shm_buffer(self, w: int, h: int) -> ImageBuffer | None:
        made = shm_buffer(self._display, self._visual, self._depth, w, h)
        if isinstance(made, str):
            self.fallbacks_used.append(f"{made}: XPutImage")
            return None
        return made

    def _free_buffers(self) -> None:
        buffers = self._buffers
        if not buffers:
            return
        alive = self._display is not None and not xlib.connection_lost(self._display)
        if alive and any(b.busy for b in buffers):
            # Detaching a segment the server is still reading from would cut the put short.
            try:
                self._wait_for(lambda: not any(b.busy for b in buffers), COMPLETION_TIMEOUT_S,
                               "the X server never finished showing a frame")
            except PresentError:
                pass  # closing anyway; the segment is already marked for removal
        self._buffers = []
        destroy_buffers(self._libs, self._display, buffers, alive)

    # -- drawing -------------------------------------------------------------

    def _check_thread(self) -> None:
        if threading.get_ident() != self._thread:
            raise PresentError("the x11 presenter was used from a thread that did not open it")
        if self._display is None:
            raise PresentError("the x11 presenter is closed")

    def present(self, frame: av.VideoFrame) -> int:
        self._check_thread()
        self.width, self.height = frame.width, frame.height
        self._last_frame = frame
        self._draw(frame)
        self.frames_presented += 1
        return time.monotonic_ns()

    def _draw(self, frame: av.VideoFrame) -> None:
        while True:
            # A resize since the last frame (or while waiting) remakes the buffers first.
            self._take_events(redraw=False)
            buffer = self._buffers[self._next]
            if buffer.busy:
                self._wait_for(lambda b=buffer: not b.busy, COMPLETION_TIMEOUT_S,
                               "the X server never finished showing a frame")
            if not self._resize_pending:
                break
        box = letterbox(frame.width, frame.height, *self._size)
        if box.w and box.h:
            scale_into(self._reformatter, buffer, frame, box, self.pixel_format)
            if self._overlay_lines:  # inside the picture: its pixels are rewritten each frame
                self._text().draw(self._overlay_lines, buffer.pixels[
                    box.y:box.y + box.h, box.x * 4:(box.x + box.w) * 4])
        self._put(buffer)
        self._next = (self._next + 1) % len(self._buffers)

    def _put(self, buffer: ImageBuffer) -> None:
        w, h = self._size
        if buffer.shminfo is not None:
            # send_event=True: the server tells us when it copied the segment,
            # the moment we may write into it again.
            self._libs.xext.XShmPutImage(self._display, self._window, self._gc, buffer.image,
                                         0, 0, 0, 0, w, h, True)
            buffer.busy = True
        else:
            self._libs.x11.XPutImage(self._display, self._window, self._gc, buffer.image,
                                     0, 0, 0, 0, w, h)
        self._libs.x11.XFlush(self._display)
        self._check_connection()

    def _redraw(self) -> None:
        """Show the last frame again (after a resize or expose); not counted."""
        if self._last_frame is not None:
            self._draw(self._last_frame)

    # -- the stats overlay: blended into the pixels ------------------------------

    def _text(self):
        if self._overlay is None:
            from rootstream.present.x11_overlay import PixelOverlay

            self._overlay = PixelOverlay()
        return self._overlay

    def set_overlay(self, lines: list[str] | None) -> None:
        """Drawn over the top-left of each frame from the next one on (None: hidden)."""
        self._overlay_lines = tuple(lines or ())

    def overlay_problem(self) -> str:
        return self._text().problem()

    def output_rect(self) -> Rect:
        """Where the picture is drawn, in window pixels."""
        return letterbox(self.width, self.height, *self._size)

    def read_pixels(self) -> np.ndarray:
        """The window's pixels as the X server holds them (after every put finished)."""
        self._check_thread()
        self._take_events()
        self._libs.x11.XSync(self._display, False)
        pixels = read_window(self._libs, self._display, self._window, *self._size)
        if pixels is None:
            self._check_connection()
            raise PresentError("the X server would not send the window's pixels back",
                               details=xlib.take_errors(self._display))
        if self.pixel_format == "rgb0":
            pixels[..., [0, 2]] = pixels[..., [2, 0]]
        return pixels

    @property
    def x11_window(self) -> int:
        """The X11 window id (for input tools and tests)."""
        return int(self._window)

    def describe(self) -> str:
        method = "MIT-SHM" if self.use_shm else "XPutImage"
        return f"{self.display_name} {self._size[0]}x{self._size[1]} via {method}" + "".join(
            f"; {why}" for why in self.fallbacks_used)

    def close(self) -> None:
        display = self._display
        if display is None:
            return
        alive = not xlib.connection_lost(display)
        self._free_buffers()
        x11 = self._libs.x11
        if alive:
            if self._gc is not None:
                x11.XFreeGC(display, self._gc)
            if self._window:
                x11.XDestroyWindow(display, self._window)
        self._gc, self._window, self._display = None, 0, None
        self._last_frame = None
        if self._overlay is not None:
            self._overlay.close()
            self._overlay = None
        x11.XCloseDisplay(display)
        xlib.forget(display)
