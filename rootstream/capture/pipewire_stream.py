"""A consumer of one PipeWire video node (a portal screencast), on its own pw_thread_loop.

PipeWire calls us on its loop thread: ``param_changed`` when the format is
fixed (we answer with the buffers and metadata we can read) and ``process``
when buffers are ready.  ``process`` dequeues every ready buffer, keeps the
newest picture, copies it into one of three arrays of our own and requeues the
buffers at once, so the producer (the compositor) never waits on us; the
reader takes frames with ``wait_frame`` (latest wins, older ones count as
dropped).  Screen-capture producers send a buffer only when the screen
changed, so ``latest()`` keeps the last picture for a still screen.

No Python exception may unwind into PipeWire's C code: every callback catches,
records the error in ``closed_reason`` and wakes the reader, which then raises
CaptureError.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time

from .._native import pipewire as pw
from .._native import spa_video
from ..errors import CaptureError
from ..stats import LatencyRing
from .pipewire_buffers import (
    CursorInfo,
    DmaBufMaps,
    FrameSlots,
    MappedPlanes,
    PipeWireFrame,
)
from .pipewire_callbacks import PipeWireCallbacks, encode_params
from .pipewire_damage import DamageLog

__all__ = ["CursorInfo", "PipeWireFrame", "PipeWireStream", "encode_params"]

log = logging.getLogger(__name__)
ffi = pw.ffi

_HINT = "check that PipeWire runs in this session (systemctl --user status pipewire)"
# Don't let the session manager move us to another node when ours goes away: a
# screencast that ends must end capture, not silently show another source.
_CONNECT_FLAGS = (pw.STREAM_FLAG_AUTOCONNECT | pw.STREAM_FLAG_MAP_BUFFERS
                  | pw.STREAM_FLAG_DONT_RECONNECT)
# node.name goes into a properties string: keep it to characters that need no quoting.
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


class PipeWireStream(PipeWireCallbacks):
    """Consumes one PipeWire video node on its own pw_thread_loop."""

    def __init__(self, node_id: int, *, fd: int | None = None, cursor_metadata: bool = True,
                 app_name: str = "rootstream", negotiate_timeout: float | None = 5.0,
                 max_fps: float | None = None):
        self.node_id = node_id
        self.cursor_metadata = cursor_metadata
        # Rounded up: a cap of 59.94 must not make the producer send 59.
        self.max_fps = None if max_fps is None else math.ceil(max_fps)
        self.closed_reason: str | None = None
        self.dropped = 0
        self.skipped: dict[str, int] = {}  # why buffers without a picture were passed over
        self.callback_errors = 0
        self.format: spa_video.VideoFormat | None = None
        self.cursor: CursorInfo | None = None  # the newest cursor meta, cursor-only updates too
        # What one process callback that delivered a picture cost (dequeue to requeue), for
        # benchmarks and stats: the time the PipeWire thread was busy with us.
        self.process_ns = LatencyRing(512)
        self._cond = threading.Condition()
        self._pending: PipeWireFrame | None = None  # arrived, not yet taken
        self._held: PipeWireFrame | None = None  # taken by the reader
        self._latest: PipeWireFrame | None = None
        self._slots = FrameSlots()
        self._damage = DamageLog()
        self.copies = {"full": 0, "damage": 0}  # how each picture was copied, for benchmarks
        self._dmabufs = DmaBufMaps()
        self._mapped = MappedPlanes()
        self._metas: dict[int, dict] = {}  # per pw_buffer address: meta_table()
        self._counter = 0
        self._closing = False
        self._closed = False
        self._fd = fd  # ours from here on, whatever fails below
        self._context = self._core = self._stream = self._loop = ffi.NULL
        try:
            self._lib = lib = pw.load()
        except CaptureError:
            self._close_fd()
            raise
        self._loop = lib.pw_thread_loop_new(f"{app_name}-pw".encode(), ffi.NULL)
        if self._loop == ffi.NULL:
            self._close_fd()
            raise CaptureError("cannot create a PipeWire thread loop", hint=_HINT)
        self._callbacks = self._make_callbacks()
        try:
            self._connect(app_name)
            if negotiate_timeout is not None:
                self.wait_negotiated(negotiate_timeout)
        except BaseException:
            self.close()
            raise

    # -- set-up ---------------------------------------------------------------------------

    def _make_callbacks(self) -> dict:
        def guarded(signature, method):
            def on_error(exc_type, exc, _tb):
                self._callback_failed(method.__name__, exc)
            return ffi.callback(signature, method, onerror=on_error)

        events = ffi.new("struct pw_stream_events *")
        events.version = pw.VERSION_STREAM_EVENTS
        callbacks = {
            "state_changed": guarded("void(void *, int, int, const char *)", self._on_state),
            "param_changed": guarded("void(void *, uint32_t, const struct spa_pod *)",
                                     self._on_param),
            "remove_buffer": guarded("void(void *, struct pw_buffer *)", self._on_remove_buffer),
            "process": guarded("void(void *)", self._on_process),
        }
        for name, callback in callbacks.items():
            setattr(events, name, callback)
        core_events = ffi.new("struct pw_proxy_events *")
        core_events.version = pw.VERSION_PROXY_EVENTS
        callbacks["core_error"] = core_events.error = guarded(
            "void(void *, int, int, const char *)", self._on_core_error)
        callbacks["events"], callbacks["core_events"] = events, core_events
        callbacks["stream_hook"] = ffi.new("struct spa_hook *")
        callbacks["core_hook"] = ffi.new("struct spa_hook *")
        return callbacks

    def _connect(self, app_name: str) -> None:
        lib = self._lib
        self._context = lib.pw_context_new(lib.pw_thread_loop_get_loop(self._loop), ffi.NULL, 0)
        if self._context == ffi.NULL:
            raise CaptureError("cannot create a PipeWire context", hint=_HINT)
        if lib.pw_thread_loop_start(self._loop) < 0:
            raise CaptureError("cannot start the PipeWire thread loop", hint=_HINT)
        lib.pw_thread_loop_lock(self._loop)
        try:
            if self._fd is not None:
                # The core owns the fd from here on and closes it when disconnected.
                fd, self._fd = self._fd, None
                self._core = lib.pw_context_connect_fd(self._context, fd, ffi.NULL, 0)
                where = "the portal's PipeWire remote"
            else:
                self._core = lib.pw_context_connect(self._context, ffi.NULL, 0)
                where = os.environ.get("PIPEWIRE_REMOTE") or "the PipeWire daemon (pipewire-0)"
            if self._core == ffi.NULL:
                why = os.strerror(ffi.errno) if ffi.errno else "refused"
                raise CaptureError(f"cannot connect to {where}: {why}", hint=_HINT)
            lib.pw_proxy_add_listener(ffi.cast("struct pw_proxy *", self._core),
                                      self._callbacks["core_hook"],
                                      self._callbacks["core_events"], ffi.NULL)
            props = lib.pw_properties_new_string(
                f"media.type=Video media.category=Capture media.role=Screen "
                f"node.name={_SAFE_NAME.sub('-', app_name)}-capture".encode())
            self._stream = lib.pw_stream_new(self._core, f"{app_name} capture".encode(), props)
            if self._stream == ffi.NULL:
                raise CaptureError("cannot create a PipeWire stream", hint=_HINT)
            lib.pw_stream_add_listener(self._stream, self._callbacks["stream_hook"],
                                       self._callbacks["events"], ffi.NULL)
            params, _keep = encode_params(spa_video.enum_formats(max_fps=self.max_fps))
            res = lib.pw_stream_connect(self._stream, pw.DIRECTION_INPUT, self.node_id,
                                        _CONNECT_FLAGS, params, len(params))
            if res < 0:
                raise CaptureError(f"cannot connect a stream to PipeWire node {self.node_id}: "
                                   f"{os.strerror(-res)}", hint=_HINT)
        finally:
            lib.pw_thread_loop_unlock(self._loop)

    # -- the reader's side ----------------------------------------------------------------

    def wait_negotiated(self, timeout: float) -> tuple[int, int, str]:
        """(width, height, pixel_format) once the format is fixed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.format is None and self.closed_reason is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CaptureError(
                        f"PipeWire node {self.node_id} agreed no video format within "
                        f"{timeout:g} s", hint="the producer may offer no BGRx/BGRA/RGBx/RGBA/"
                        "xRGB format in shared memory or linear DMA-BUF")
                self._cond.wait(left)
            if self.format is None:
                raise CaptureError(f"PipeWire node {self.node_id} ended before a video format "
                                   f"was agreed: {self.closed_reason}",
                                   hint="the screencast may have been stopped; start it again")
            fmt = self.format
        name = "RGBX" if fmt.pixel_format == "xRGB" else fmt.pixel_format
        return fmt.width, fmt.height, name

    def wait_frame(self, timeout: float | None) -> PipeWireFrame | None:
        """The newest frame since the last call, or None when none came within ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending is None and self.closed_reason is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)
            if self._pending is None:
                raise self._ended()
            return self._take()

    def latest(self) -> PipeWireFrame | None:
        """The last frame delivered (kept for a still screen); taking it as wait_frame would."""
        with self._cond:
            if self._pending is not None:
                return self._take()
            return self._latest

    def _take(self) -> PipeWireFrame:
        self._held, self._pending = self._pending, None
        return self._held

    def _ended(self) -> CaptureError:
        return CaptureError(f"the PipeWire screencast ended: {self.closed_reason}",
                            hint="start capture again; the compositor or the user may have "
                            "stopped sharing the screen")

    # -- tear-down ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the loop and free the stream, the connection (and the portal's fd)."""
        if self._closed:
            return
        self._closed = self._closing = True
        lib = self._lib
        if self._loop != ffi.NULL:
            lib.pw_thread_loop_lock(self._loop)
            try:
                if self._stream != ffi.NULL:
                    lib.pw_stream_destroy(self._stream)
                if self._core != ffi.NULL:
                    lib.pw_core_disconnect(self._core)
            finally:
                lib.pw_thread_loop_unlock(self._loop)
            lib.pw_thread_loop_stop(self._loop)
            if self._context != ffi.NULL:
                lib.pw_context_destroy(self._context)
            lib.pw_thread_loop_destroy(self._loop)
        self._stream = self._core = self._context = self._loop = ffi.NULL
        self._dmabufs.close()
        self._close_fd()
        self._mark_closed("closed")
        self._callbacks = {}

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> PipeWireStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
