"""What PipeWire calls on its loop thread, for one PipeWireStream.

Part of ``PipeWireStream`` (rootstream.capture.pipewire_stream), kept apart
because it runs on PipeWire's loop thread with the loop lock held, not the
reader's: state changes, core errors, the format (answered with the buffers
and metadata we can read), removed buffers, and ``process``, which dequeues
every ready buffer, keeps the newest picture, copies it into one of our
slots, requeues at once and wakes the reader.  No Python exception may
unwind into PipeWire's C code: every callback catches, records the error in
``closed_reason`` and wakes the reader.  Its attributes are the stream's.
"""

from __future__ import annotations

import errno
import logging
import os
import time

from .._native import pipewire as pw
from .._native import spa_pod, spa_video
from .._native.drm_parse import DrmError
from .pipewire_buffers import (
    BufferSkipped,
    PipeWireFrame,
    copy_plane,
    cursor_changed,
    locate_plane,
    meta_table,
    read_cursor,
    read_damage,
    read_header,
)
from .pipewire_damage import clip_rects

log = logging.getLogger("rootstream.capture.pipewire_stream")  # one logger for the stream
ffi = pw.ffi
_DATA_NAMES = {pw.DATA_MEMPTR: "shared memory", pw.DATA_MEMFD: "memfd",
               pw.DATA_DMABUF: "DMA-BUF"}


def encode_params(params: list) -> tuple:
    """(const struct spa_pod **, keepalive) for a list of spa_pod values."""
    blobs = [ffi.from_buffer(spa_pod.encode(p)) for p in params]
    array = ffi.new("const struct spa_pod *[]", [ffi.cast("struct spa_pod *", b) for b in blobs])
    return array, blobs


class PipeWireCallbacks:
    """The loop-thread half of ``PipeWireStream``."""

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


__all__ = ["PipeWireCallbacks", "encode_params"]
