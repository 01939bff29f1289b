"""Wayland capture: the xdg-desktop-portal ScreenCast portal and a PipeWire stream.

This is how a Wayland desktop (GNOME, KDE Plasma, sway and the other
wlroots compositors) lets an unprivileged program see the screen: the
portal asks the user which screen to share (once: the restore token in the
XDG state dir remembers the answer, see portal_session), and the compositor
then sends its pictures into a PipeWire node that we read with
:class:`~rootstream.capture.pipewire_stream.PipeWireStream`.

Capture is change-driven like x11: the compositor sends a buffer only when
the screen changed, ``grab()`` returns each one at once, at most about
``fps`` a second (base.ChangeRateCap), and a still screen costs nothing.
``grab(force=True)`` hands back the last picture again for a new client;
a stream that has not sent its first picture yet (a new stream on a still
screen gets none until something changes) makes it wait up to the timeout.

The cursor: the compositor draws it into the picture (cursor_mode embedded)
when it offers that; otherwise it sends it as metadata, and we draw it in;
a pointer moving over a still screen then gives frames too (the kept
picture, the pointer where it went), under the same rate cap.  The stream
asks the compositor for no more than ``fps`` pictures a second.

When the compositor ends the session (the user revoked it, the compositor or
its portal backend restarted, the output went away), the next ``grab()``
raises CaptureError saying so, rather than streaming a frozen picture.
"""

from __future__ import annotations

import time

import numpy as np

from ..errors import CaptureError
from ..frame import CapturedFrame
from .base import CaptureBackend, ChangeRateCap, deadline_after
from .portal_session import PortalSession
from .portal_token import TokenStore

NEGOTIATE_TIMEOUT = 5.0  # the compositor fixes the format within ~0.1 s here
WAKE_S = 0.25  # longest sleep between looks at whether the session was closed
# A pts further than this from our clock is not CLOCK_MONOTONIC (some
# compositors stamp with another clock): stamp the frame when it arrived.
PTS_TRUST_NS = 1_000_000_000
ENDED_HINT = ("the compositor stopped sharing the screen (sharing revoked, compositor or "
              "portal restarted, or the output unplugged): start the host again")


class PortalCapture(CaptureBackend):
    """The screen the portal's chooser (or the stored token) picked, as BGRX-style frames.

    There is no ``output=``: which screen is shared is the user's choice in
    the portal's own dialog, remembered by the restore token.
    """

    name = "portal"

    def __init__(self, fps: float = 60, cursor: bool = True, *, token_path=None,
                 bus_address: str | None = None, choose_timeout: float | None = None):
        super().__init__()
        if not 0 < fps <= 1000:
            raise CaptureError("capture frame rate must be between 0 and 1000",
                               details=[f"asked for {fps}"])
        self._init_state(fps)
        session_options = {"tokens": TokenStore(token_path)} if token_path else {}
        if choose_timeout is not None:
            session_options["choose_timeout"] = choose_timeout
        self._session = PortalSession(bus_address=bus_address, **session_options)
        try:
            granted = self._session.start()
            self.cursor_mode = granted.cursor_mode
            self.node_id = granted.node_id
            self._open_stream(granted, cursor)
        except BaseException:
            self.close()
            raise

    def _init_state(self, fps: float) -> None:
        self._stream = None
        self._session = None
        self._fps = fps
        self._pacer = ChangeRateCap(fps)
        self._pending = None  # a frame taken from the stream that grab() has not returned
        self._cursor: MetadataCursor | None = None  # when we draw the pointer ourselves
        # When the last returned picture reached our process (PipeWire's process
        # callback): splits its latency into the compositor's, the transport's, ours.
        self.last_arrived_ns: int | None = None

    @classmethod
    def from_stream(cls, stream, fps: float = 60, *, cursor_metadata: bool = True
                    ) -> PortalCapture:
        """Capture an open PipeWireStream with no portal session around it (a node
        reached another way; the tests' producer).  ``cursor_metadata``: draw the
        cursor the stream sends as metadata."""
        capture = cls.__new__(cls)
        CaptureBackend.__init__(capture)
        capture._init_state(fps)
        capture.cursor_mode = "metadata" if cursor_metadata else "embedded"
        capture.node_id = stream.node_id
        capture._cursor = MetadataCursor() if cursor_metadata else None
        capture._stream = stream
        capture.width, capture.height, capture.pixel_format = stream.wait_negotiated(
            NEGOTIATE_TIMEOUT)
        return capture

    def _open_stream(self, granted, cursor: bool) -> None:
        try:
            from .pipewire_stream import PipeWireStream
        except ImportError as exc:
            raise CaptureError("this rootstream has no PipeWire stream support",
                               hint="install a rootstream with rootstream/capture/"
                                    "pipewire_stream.py, or use --source x11",
                               details=[str(exc)]) from exc
        if cursor and granted.cursor_mode == "metadata":
            self._cursor = MetadataCursor()
        if granted.cursor_mode == "hidden":
            self.fallbacks.append("cursor not shown: the portal offers neither an embedded "
                                  "nor a metadata cursor")
        # max_fps: the compositor need not copy more pictures than we pass on.
        self._stream = PipeWireStream(granted.node_id, fd=granted.fd,
                                      cursor_metadata=self._cursor is not None,
                                      max_fps=self._fps)
        self.width, self.height, self.pixel_format = self._stream.wait_negotiated(
            NEGOTIATE_TIMEOUT)

    # -- grabbing ------------------------------------------------------------

    def grab(self, timeout: float | None = None, *, force: bool = False) -> CapturedFrame | None:
        if self._stream is None:
            raise CaptureError("the portal capture is closed")
        deadline = deadline_after(timeout)
        if self._pending is None and not (force and self._stream.latest() is not None):
            self._pending = self._wait_for_frame(deadline)
            if self._pending is None:
                return None
        before = time.monotonic_ns()
        slot = self._pacer.wait(deadline)
        if slot is None:
            return None
        # Latest wins: a newer picture that came while the cap held us back
        # replaces the one we were holding.
        newest = self._next_frame(0) if slot > before else None
        frame = newest or self._pending or self._stream.latest()
        self._pending = None
        captured = _capture_stamp(frame)
        self._pacer.taken(slot, captured)
        return self._to_captured(frame, captured)

    def _wait_for_frame(self, deadline: int | None):
        """The next picture from the compositor, or None at ``deadline``."""
        while True:
            if deadline is None:
                wait = WAKE_S
            else:
                wait = min(WAKE_S, (deadline - time.monotonic_ns()) / 1e9)
                if wait <= 0:
                    return self._next_frame(0)
            frame = self._next_frame(wait)
            if frame is not None:
                return frame

    def _next_frame(self, wait: float):
        reason = self._session.closed_reason if self._session is not None else None
        if reason:
            raise CaptureError(f"the screen-sharing session ended: {reason}", hint=ENDED_HINT)
        try:
            return self._stream.wait_frame(wait)
        except CaptureError as exc:
            why = (self._session.closed_reason if self._session is not None else None) or str(exc)
            raise CaptureError(f"the screen-sharing session ended: {why}", hint=ENDED_HINT,
                               details=[str(exc)]) from exc

    def _to_captured(self, frame, captured_ns: int) -> CapturedFrame:
        self.width, self.height = frame.width, frame.height
        self.pixel_format = frame.pixel_format
        self.last_arrived_ns = frame.arrived_ns
        pixels = self._cursor.draw(frame) if self._cursor is not None else frame.pixels
        return self._frame(pixels, captured_ns)

    # -- closing -------------------------------------------------------------

    def describe(self) -> str:
        text = (f"{self.width}x{self.height} {self.pixel_format} via the ScreenCast portal "
                f"(PipeWire node {getattr(self, 'node_id', '?')}, "
                f"cursor {getattr(self, 'cursor_mode', '?')})")
        return text + "".join(f"; {why}" for why in self.fallbacks)

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()
        self._pending = None
        session, self._session = getattr(self, "_session", None), None
        if session is not None:
            session.close()


class MetadataCursor:
    """Draws the pointer a stream sends as metadata (SPA cursor meta) into its frames.

    The stream's copy stays clean, because force=True shows it again with the
    pointer where it is by then: the pointer goes onto a copy of our own.  When
    only the pointer moved (the frame carries the same picture as the last one
    drawn), only the spot it left is restored, not the whole frame copied.
    """

    def __init__(self) -> None:
        self._bitmap: np.ndarray | None = None  # the stream sends it only when it changes
        self._canvas: np.ndarray | None = None
        self._canvas_picture = 0  # the frame.picture the canvas holds (0: none known)
        self._drawn: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 of the pointer

    def draw(self, frame) -> np.ndarray:
        """The frame's pixels with the pointer on top (the pixels as they are without one)."""
        from .kms import blend_cursor

        cursor = frame.cursor
        if cursor is not None and cursor.bitmap is not None:
            self._bitmap = cursor.bitmap.copy()
        if cursor is None or self._bitmap is None:
            self._canvas_picture = 0
            return frame.pixels
        if self._canvas is None or self._canvas.shape != frame.pixels.shape:
            self._canvas = np.empty_like(frame.pixels)
            self._canvas_picture = 0
        picture = getattr(frame, "picture", 0)
        if picture and picture == self._canvas_picture and self._drawn is not None:
            x0, y0, x1, y1 = self._drawn  # the same picture: put back where it was
            self._canvas[y0:y1, x0 * 4:x1 * 4] = frame.pixels[y0:y1, x0 * 4:x1 * 4]
        else:
            np.copyto(self._canvas, frame.pixels)
        self._canvas_picture = picture
        view = self._canvas[:, :frame.width * 4].reshape(frame.height, frame.width, 4)
        x, y = cursor.x - cursor.hotspot_x, cursor.y - cursor.hotspot_y
        height, width = self._bitmap.shape[:2]
        self._drawn = (max(x, 0), max(y, 0), min(x + width, frame.width),
                       min(y + height, frame.height))
        # SPA cursor bitmaps carry straight (not premultiplied) alpha.
        blend_cursor(view, self._bitmap, x, y, blend="Coverage")
        return self._canvas


def _capture_stamp(frame) -> int:
    """The compositor's pts when it is on our clock, else when the buffer arrived."""
    pts = frame.pts_ns
    if pts is not None and abs(frame.arrived_ns - pts) < PTS_TRUST_NS:
        return pts
    return frame.arrived_ns
