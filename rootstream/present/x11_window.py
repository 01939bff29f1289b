"""The x11 presenter's window: its events, waiting on the server, fullscreen.

Part of ``X11Presenter`` (rootstream.present.x11), kept apart because it is
the conversation with the X server rather than the pixels: events read
without blocking (a resize remakes the buffers; an expose repaints the last
picture; ShmCompletion frees a segment; the close button and keys become
PresenterEvents), waits for a reply with a deadline (a silent server is an
error, not a hang), and fullscreen with or without a window manager.  Xlib
calls run on the presenter's thread; its attributes are the presenter's.
"""

from __future__ import annotations

import time

from rootstream._native import xlib
from rootstream._native.xlib import ffi
from rootstream.errors import PresentError
from rootstream.present.base import PresenterEvent
from rootstream.present.x11_requests import (
    ask_fullscreen_toggle,
    key_event,
    window_manager_running,
)

LOST_DISPLAY = "lost the connection to the X display"


class X11WindowEvents:
    """The window-and-events half of ``X11Presenter``."""

    def poll_events(self) -> list[PresenterEvent]:
        self._check_thread()
        self._take_events()
        events, self._pending = self._pending, []
        return events

    def _take_events(self, *, redraw: bool = True) -> None:
        """Read what the server sent without blocking; a resize remakes the
        buffers, and shows the last frame at the new size if ``redraw``."""
        x11 = self._libs.x11
        while x11.XPending(self._display):
            x11.XNextEvent(self._display, self._event)
            self._handle(self._event)
        self._check_connection()
        if self._resize_pending:
            self._make_buffers()
            if redraw:
                self._redraw()

    def _handle(self, event) -> None:
        """Turn one raw event into PresenterEvents and buffer state."""
        for listener in self._listeners:
            listener(event)
        kind = event.type
        if kind == self._shm_completion:
            completion = ffi.cast("XShmCompletionEvent *", event)
            for buffer in self._buffers:
                if buffer.shminfo is not None and buffer.shminfo.shmseg == completion.shmseg:
                    buffer.busy = False
        elif kind == xlib.CONFIGURE_NOTIFY:
            configure = ffi.cast("XConfigureEvent *", event)
            size = (configure.width, configure.height)
            if configure.window == self._window and size != self._size:
                self._size = size
                self._resize_pending = True
                self._pending.append(PresenterEvent("resized", width=size[0], height=size[1]))
        elif kind == xlib.MAP_NOTIFY:
            self._mapped = True
        elif kind == xlib.EXPOSE:
            if ffi.cast("XExposeEvent *", event).count == 0 and self._last_frame is not None:
                self._put_last()
        elif kind == xlib.CLIENT_MESSAGE:
            message = ffi.cast("XClientMessageEvent *", event)
            if (message.message_type == self._atoms["WM_PROTOCOLS"]
                    and message.data.l[0] == self._atoms["WM_DELETE_WINDOW"]):
                self._pending.append(PresenterEvent("quit"))
        elif kind in (xlib.KEY_PRESS, xlib.KEY_RELEASE):
            self._pending.append(key_event(self._libs, ffi.cast("XKeyEvent *", event)))

    def _put_last(self) -> None:
        # The last put buffer still holds the picture: show it again as is.
        previous = self._buffers[(self._next - 1) % len(self._buffers)]
        if previous.busy:
            return  # its put is still on the way, and will paint the window
        self._put(previous)

    def _wait_for(self, done, timeout_s: float, failure: str) -> None:
        """Handle events until ``done()``; a server that stays silent is an error."""
        x11 = self._libs.x11
        deadline = time.monotonic() + timeout_s
        while not done():
            if x11.XPending(self._display):
                x11.XNextEvent(self._display, self._event)
                self._handle(self._event)  # a resize is left to the caller: _resize_pending
                continue
            self._check_connection()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PresentError(failure, hint="is the X server overloaded or stopped?",
                                   details=xlib.take_errors(self._display))
            self._poll.poll(max(1, int(remaining * 1000)))

    def _check_connection(self) -> None:
        if xlib.connection_lost(self._display):
            raise PresentError(LOST_DISPLAY, hint="the X server exited or the session ended")

    def toggle_fullscreen(self) -> bool:
        """EWMH fullscreen when a window manager runs; without one (bare Xvfb),
        the window is moved over the whole screen and back."""
        self._check_thread()
        x11 = self._libs.x11
        going = not self._fullscreen
        if window_manager_running(self._libs, self._display, self._root, self._atoms):
            ask_fullscreen_toggle(self._libs, self._display, self._root, self._window,
                                  self._atoms)
        elif going:
            self._windowed_geometry = self._window_geometry()
            x11.XMoveResizeWindow(self._display, self._window, 0, 0, *self.screen_size)
        else:
            x, y, w, h = self._windowed_geometry or (0, 0, self.width, self.height)
            x11.XMoveResizeWindow(self._display, self._window, x, y, w, h)
        x11.XFlush(self._display)
        self._check_connection()
        self._fullscreen = going
        return going

    def window_size(self) -> tuple[int, int]:
        self._check_thread()
        self._take_events()
        return self._size

    def set_window_size(self, width: int, height: int) -> None:
        self._check_thread()
        self._libs.x11.XResizeWindow(self._display, self._window, width, height)
        self._libs.x11.XFlush(self._display)


__all__ = ["LOST_DISPLAY", "X11WindowEvents"]
