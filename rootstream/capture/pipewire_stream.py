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

import errno
import logging
import math
import os
import re
import threading
import time

from .._native import pipewire as pw
from .._native import spa_pod, spa_video
from .._native.drm_parse import DrmError
from ..errors import CaptureError
from ..stats import LatencyRing
from .pipewire_buffers import (
    BufferSkipped,
    CursorInfo,
    DmaBufMaps,
    FrameSlots,
    MappedPlanes,
    PipeWireFrame,
    copy_plane,
    cursor_changed,
    locate_plane,
    meta_table,
    read_cursor,
    read_damage,
    read_header,
)
from .pipewire_damage import DamageLog, clip_rects

__all__ = ["CursorInfo", "PipeWireFrame", "PipeWireStream"]

log = logging.getLogger(__name__)
ffi = pw.ffi

_HINT = "check that PipeWire runs in this session (systemctl --user status pipewire)"
# Don't let the session manager move us to another node when ours goes away: a
# screencast that ends must end capture, not silently show another source.
_CONNECT_FLAGS = (pw.STREAM_FLAG_AUTOCONNECT | pw.STREAM_FLAG_MAP_BUFFERS
                  | pw.STREAM_FLAG_DONT_RECONNECT)
_DATA_NAMES = {pw.DATA_MEMPTR: "shared memory", pw.DATA_MEMFD: "memfd",
               pw.DATA_DMABUF: "DMA-BUF"}
# node.name goes into a properties string: keep it to characters that need no quoting.
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def encode_params(params: list) -> tuple:
    """(const struct spa_pod **, keepalive) for a list of spa_pod values."""
    blobs = [ffi.from_buffer(spa_pod.encode(p)) for p in params]
    array = ffi.new("const struct spa_pod *[]", [ffi.cast("struct spa_pod *", b) for b in blobs])
    return array, blobs


class PipeWireStream:
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

    # -- PipeWire's side (loop thread, loop lock held) ------------------------------------

    def _on_state(self, _data, old, state, error) -> None:
        if state == pw.STATE_ERROR:
            message = ffi.string(error).decode(errors="replace") if error else "unknown error"
            self._mark_closed(f"stream error: {message}")
        elif state == pw.STATE_UNCONNECTED and not self._closing:
            # The session manager unlinks us when the node is gone or has no format we
            # can read (e.g. only tiled DMA-BUFs); it cannot tell us which.
            self._mark_closed("the stream was disconnected (the producer went away)"
                              if self.format is not None else
                              "the stream was disconnected (no such node, or it offers no "
                              "format we can read)")
        if log.isEnabledFor(logging.DEBUG):
            name = self._lib.pw_stream_state_as_string
            log.debug("PipeWire stream %s -> %s", ffi.string(name(old)).decode(),
                      ffi.string(name(state)).decode())

    def _on_core_error(self, _data, seq, res, message) -> None:
        text = ffi.string(message).decode(errors="replace") if message else ""
        if res == -errno.EPIPE:
            self._mark_closed(f"lost the connection to PipeWire ({text})")
        else:
            self._mark_closed(f"PipeWire error: {text or os.strerror(-res)}")

    def _on_param(self, _data, param_id, param) -> None:
        if param_id != spa_video.PARAM_FORMAT:
            return
        if param == ffi.NULL:
            with self._cond:
                self.format = None  # the link is being torn down or renegotiated
            return
        value = spa_pod.decode(ffi.buffer(param, 8 + param.size))
        try:
            fmt = spa_video.parse_format(value)
        except ValueError as exc:
            self._mark_closed(f"the producer chose a format we cannot read ({exc})")
            return
        params, _keep = encode_params([spa_video.buffers_param(fmt)]
                                      + spa_video.meta_params(self.cursor_metadata))
        self._lib.pw_stream_update_params(self._stream, params, len(params))
        log.debug("PipeWire format fixed: %s", fmt)
        self._damage.lost_picture()  # our arrays hold pictures of the old format
        with self._cond:
            self.format = fmt
            self._cond.notify_all()

    def _on_remove_buffer(self, _data, buffer) -> None:
        spa = buffer.buffer
        self._metas.pop(int(ffi.cast("uintptr_t", buffer)), None)
        for i in range(spa.n_datas):
            if spa.datas[i].type == pw.DATA_DMABUF:
                self._dmabufs.forget(int(spa.datas[i].fd))
            else:
                self._mapped.forget(spa.datas[i])

    def _on_process(self, _data) -> None:
        arrived = time.monotonic_ns()
        ready = []
        while True:
            buffer = self._lib.pw_stream_dequeue_buffer(self._stream)
            if buffer == ffi.NULL:
                break
            ready.append(buffer)
        try:
            delivered = self._deliver_newest(ready, arrived)
        finally:
            for buffer in ready:
                self._lib.pw_stream_queue_buffer(self._stream, buffer)
        if delivered:
            self.process_ns.add(time.monotonic_ns() - arrived)

    def _deliver_newest(self, ready: list, arrived: int) -> bool:
        """Publish the newest picture among ``ready`` (or, when they hold none, a new
        cursor over the kept picture); whether a frame was published."""
        fmt = self.format
        if fmt is None:
            return False
        newest = None  # (plane, pts, seq, damage, version) of the newest picture
        pictures = 0
        cursor_moved, cursor_stamp = False, (None, None)
        for buffer in ready:  # oldest first: the damage log wants them in order
            spa = buffer.buffer
            key = int(ffi.cast("uintptr_t", buffer))
            metas = self._metas.get(key)
            if metas is None:
                metas = self._metas[key] = meta_table(spa)
            pts, seq, flags = read_header(spa, metas)
            self._damage.saw_buffer(seq)
            found = metas.get(pw.META_CURSOR) if self.cursor_metadata else None
            if found is not None:  # id 0 inside: no pointer on this output (hidden)
                cursor = read_cursor(found[0], found[1], fmt.spa_format)
                if cursor_changed(self.cursor, cursor):
                    cursor_moved, cursor_stamp = True, (pts, seq)
                self.cursor = cursor
            try:
                if flags & pw.META_HEADER_FLAG_CORRUPTED:
                    raise BufferSkipped("header marked corrupted")
                plane = locate_plane(spa, fmt)
            except BufferSkipped as why:
                self.skipped[str(why)] = self.skipped.get(str(why), 0) + 1
                if not str(why).startswith("empty"):
                    self._damage.lost_picture()
                continue
            pictures += 1
            damage = read_damage(spa, metas)
            newest = (plane, pts, seq, damage, self._damage.add_picture(damage))
        if newest is None:
            return cursor_moved and self._publish_cursor(*cursor_stamp, arrived)
        plane, pts, seq, damage, version = newest
        try:
            # Pictures in older buffers of this batch were never seen by the reader.
            self._publish(fmt, plane, pts, seq, damage, version, arrived, pictures - 1)
        except (OSError, DrmError) as exc:
            # A DMA-BUF we cannot map or sync will fail the same way every frame:
            # end capture with the reason rather than show a frozen picture.
            kind = _DATA_NAMES.get(plane.data.type, "buffer")
            self._mark_closed(f"cannot read the producer's {kind}: {exc}")
            return False
        return True

    def _publish(self, fmt, plane, pts, seq, damage, version: int, arrived, older: int) -> None:
        with self._cond:
            busy = tuple(f.pixels for f in (self._held, self._pending) if f is not None)
            dest = self._slots.free(fmt.height, plane.stride, busy)
        # xRGB's copy is shifted by a byte across row ends: always whole.
        changed = (None if fmt.pixel_format == "xRGB"
                   else self._damage.changed_since(self._slots.version_in(dest)))
        boxes = None if changed is None else clip_rects(changed, fmt.width, fmt.height)
        self._slots.wrote(dest, None)  # half-written until the copy is done
        copy_plane(plane, dest, fmt, self._dmabufs, boxes, self._mapped)  # outside the lock:
        self._slots.wrote(dest, version)  # ...the reader keeps going meanwhile
        self.copies["damage" if boxes is not None else "full"] += 1
        self._counter += 1
        frame = PipeWireFrame(
            pixels=dest, width=fmt.width, height=fmt.height, stride=plane.stride,
            pixel_format="RGBX" if fmt.pixel_format == "xRGB" else fmt.pixel_format,
            pts_ns=pts, arrived_ns=arrived, sequence=self._counter if seq is None else seq,
            cursor=self.cursor, damage=damage, picture=version)
        self._hand_over(frame, older)

    def _publish_cursor(self, pts: int | None, seq: int | None, arrived: int) -> bool:
        """A cursor-only update (the pointer moved over a still screen): the kept
        picture again, with the new cursor, so the pointer is seen to move."""
        kept = self._latest
        if kept is None:
            return False
        self._counter += 1
        # The pixels are shared with the kept frame: nobody writes into an array
        # that the reader holds or has yet to take (FrameSlots' busy list).
        frame = PipeWireFrame(
            pixels=kept.pixels, width=kept.width, height=kept.height, stride=kept.stride,
            pixel_format=kept.pixel_format, pts_ns=pts, arrived_ns=arrived,
            sequence=self._counter if seq is None else seq, cursor=self.cursor, damage=None,
            picture=kept.picture)
        self._hand_over(frame, 0)
        return True

    def _hand_over(self, frame: PipeWireFrame, older: int) -> None:
        with self._cond:
            self.dropped += older + (self._pending is not None)
            self._pending = self._latest = frame
            self._cond.notify_all()

    def _callback_failed(self, name: str, exc: BaseException) -> None:
        # Runs inside cffi's onerror: must not raise.
        self.callback_errors += 1
        log.error("PipeWire %s callback failed: %r", name, exc)
        self._mark_closed(f"internal error in the {name} callback: {exc!r}")

    def _mark_closed(self, reason: str) -> None:
        with self._cond:
            if self.closed_reason is None:
                self.closed_reason = reason
            self._cond.notify_all()

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
