"""A private PipeWire session (dbus, pipewire, wireplumber) and a video producer node.

The producer is a real PipeWire output stream built on rootstream's own binding
(PW_DIRECTION_OUTPUT, driving the graph like a compositor's screencast does),
so a test decides every pixel, the header pts and the cursor metadata that the
consumer must read back.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from rootstream._native import pipewire as pw
from rootstream._native import spa_video as sv
from rootstream._native.spa_pod import (
    CHOICE_FLAGS,
    PROP_FLAG_MANDATORY,
    Choice,
    Fraction,
    Id,
    Int,
    Long,
    Object,
    Prop,
)
from rootstream._native.spa_pod import Rectangle as Rect
from rootstream.capture.pipewire_stream import encode_params

ffi = pw.ffi
START_TIMEOUT = 10.0
# wireplumber needs a session bus.  This one has no service directories, so nothing
# on the machine (a portal, a document store) is activated behind the test's back.
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class SessionError(RuntimeError):
    """A part of the PipeWire session did not start: the test fails."""


class PipeWireSession:
    """dbus-daemon + pipewire + wireplumber on a private XDG_RUNTIME_DIR."""

    def __init__(self):
        self.runtime = Path(tempfile.mkdtemp(prefix="rootstream-pw-"))
        self.runtime.chmod(0o700)
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PIPEWIRE_REMOTE", "DBUS_SESSION_BUS_ADDRESS")}
        self.env.update(XDG_RUNTIME_DIR=str(self.runtime), PIPEWIRE_RUNTIME_DIR=str(self.runtime),
                        DBUS_SESSION_BUS_ADDRESS=f"unix:path={self.runtime / 'bus'}")
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self) -> PipeWireSession:
        try:
            config = self.runtime / "bus.conf"
            config.write_text(BUS_CONFIG.format(socket=self.runtime / "bus"))
            self._spawn("dbus", ["dbus-daemon", "--nofork", "--nosyslog",
                                 f"--config-file={config}"])
            self._wait_for("dbus", lambda: (self.runtime / "bus").exists())
            self._spawn("pipewire", ["pipewire"])
            self._wait_for("pipewire", lambda: (self.runtime / "pipewire-0").exists())
            self._spawn("wireplumber", ["wireplumber"])
            self._wait_for("wireplumber", self._wireplumber_ready)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, command: list[str]) -> None:
        if shutil.which(command[0]) is None:
            raise SessionError(f"{command[0]} is not installed (scripts/setup.sh installs it)")
        with open(self.runtime / f"{name}.log", "wb") as log:
            self.processes[name] = subprocess.Popen(
                command, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)

    def _wait_for(self, name: str, ready) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            process = self.processes[name]
            if process.poll() is not None or time.monotonic() > deadline:
                raise SessionError(f"{name} did not start (status {process.poll()}):\n"
                                   + self.log_tail(name))
            time.sleep(0.01)

    def _wireplumber_ready(self) -> bool:
        done = subprocess.run(["pw-cli", "ls", "Client"], env=self.env, capture_output=True,
                              text=True, timeout=5)
        return "wireplumber" in done.stdout.lower()

    def node_id(self, node_name: str, timeout: float = START_TIMEOUT) -> int:
        """The id of the node called ``node_name`` once it shows up (pw-dump)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = subprocess.run(["pw-dump"], env=self.env, capture_output=True, text=True,
                                  timeout=5)
            for entry in json.loads(done.stdout or "[]"):
                props = (entry.get("info") or {}).get("props") or {}
                if props.get("node.name") == node_name:
                    return entry["id"]
            time.sleep(0.05)
        raise SessionError(f"no PipeWire node {node_name!r} appeared")

    def spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        """Start another process of the session (killed by stop())."""
        self._spawn(name, command)
        return self.processes[name]

    def log_tail(self, name: str) -> str:
        path = self.runtime / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            process = self.processes.pop(name)
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(3)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(3)
        shutil.rmtree(self.runtime, ignore_errors=True)


CURSOR_BITMAP_OFFSET = sv.META_CURSOR_SIZE + 4  # where the producer puts its bitmap (aligned)


class VideoProducer:
    """A screencast-like PipeWire source: sends a buffer only when ``push`` is called."""

    def __init__(self, width: int, height: int, spa_format: int = 8, *, cursor: bool = False,
                 stride: int | None = None, name: str = "rootstream-test-producer",
                 modifier: int | None = None):
        """``modifier``: offer DMA-BUFs with that modifier only: memfds labelled
        SPA_DATA_DmaBuf, which a consumer can mmap but not DMA_BUF_IOCTL_SYNC (this
        machine has no GPU to export real ones)."""
        self.width, self.height, self.spa_format = width, height, spa_format
        self.stride = stride or width * 4
        self.cursor = cursor
        self.modifier = modifier
        self.dmabuf = modifier is not None
        self._memfds: dict[int, mmap.mmap] = {}
        self.state = pw.STATE_UNCONNECTED
        self.error = ""
        self.seq = 0
        self._cond = threading.Condition()
        lib = self._lib = pw.load()
        self._loop = lib.pw_thread_loop_new(b"producer", ffi.NULL)
        self._context = lib.pw_context_new(lib.pw_thread_loop_get_loop(self._loop), ffi.NULL, 0)
        lib.pw_thread_loop_start(self._loop)
        self._events = ffi.new("struct pw_stream_events *")
        self._events.version = pw.VERSION_STREAM_EVENTS
        self._on_state_cb = ffi.callback("void(void *, int, int, const char *)", self._on_state)
        self._events.state_changed = self._on_state_cb
        self._on_param_cb = ffi.callback("void(void *, uint32_t, const struct spa_pod *)",
                                         self._on_param)
        self._events.param_changed = self._on_param_cb
        self._add_buffer_cb = ffi.callback("void(void *, struct pw_buffer *)", self._add_buffer)
        self._remove_buffer_cb = ffi.callback("void(void *, struct pw_buffer *)",
                                              self._remove_buffer)
        if self.dmabuf:
            self._events.add_buffer = self._add_buffer_cb
            self._events.remove_buffer = self._remove_buffer_cb
        self._hook = ffi.new("struct spa_hook *")
        lib.pw_thread_loop_lock(self._loop)
        try:
            self._core = lib.pw_context_connect(self._context, ffi.NULL, 0)
            if self._core == ffi.NULL:
                raise SessionError("the producer cannot connect to PipeWire")
            props = lib.pw_properties_new_string(
                f"media.class=Video/Source node.name={name}".encode())
            self._stream = lib.pw_stream_new(self._core, name.encode(), props)
            lib.pw_stream_add_listener(self._stream, self._hook, self._events, ffi.NULL)
            params, keep = encode_params([self._format()])
            flags = pw.STREAM_FLAG_DRIVER | pw.STREAM_FLAG_MAP_BUFFERS
            if self.dmabuf:
                flags |= pw.STREAM_FLAG_ALLOC_BUFFERS
            res = lib.pw_stream_connect(self._stream, pw.DIRECTION_OUTPUT, pw.ID_ANY, flags,
                                        params, 1)
            if res < 0:
                raise SessionError(f"producer connect failed: {os.strerror(-res)}")
        finally:
            lib.pw_thread_loop_unlock(self._loop)
        self._wait(lambda: self.state >= pw.STATE_PAUSED, "reach PAUSED")
        self.node_id = lib.pw_stream_get_node_id(self._stream)

    def _format(self) -> Object:
        return Object(sv.TYPE_OBJECT_FORMAT, sv.PARAM_ENUM_FORMAT, (
            Prop(sv.FORMAT_MEDIA_TYPE, Id(sv.MEDIA_TYPE_VIDEO)),
            Prop(sv.FORMAT_MEDIA_SUBTYPE, Id(sv.MEDIA_SUBTYPE_RAW)),
            Prop(sv.FORMAT_VIDEO_FORMAT, Id(self.spa_format)),
            Prop(sv.FORMAT_VIDEO_SIZE, Rect(self.width, self.height)),
            Prop(sv.FORMAT_VIDEO_FRAMERATE, Fraction(0, 1)))
            + ((Prop(sv.FORMAT_VIDEO_MODIFIER, Long(self.modifier or 0), PROP_FLAG_MANDATORY),)
               if self.dmabuf else ()))

    def _add_buffer(self, _data, buffer) -> None:
        size = self.stride * self.height
        fd = os.memfd_create("fake-dmabuf")
        os.ftruncate(fd, size)
        self._memfds[fd] = mmap.mmap(fd, size)
        data = buffer.buffer.datas[0]
        data.type, data.flags, data.fd = pw.DATA_DMABUF, 1, fd
        data.mapoffset, data.maxsize, data.data = 0, size, ffi.NULL

    def _remove_buffer(self, _data, buffer) -> None:
        fd = int(buffer.buffer.datas[0].fd)
        self._memfds.pop(fd).close()
        os.close(fd)

    def resize(self, width: int, height: int) -> None:
        """Offer a new size, as a compositor does when the output's mode changes."""
        self.width, self.height, self.stride = width, height, width * 4
        params, keep = encode_params([self._format()])
        self._lib.pw_thread_loop_lock(self._loop)
        try:
            self._lib.pw_stream_update_params(self._stream, params, 1)
        finally:
            self._lib.pw_thread_loop_unlock(self._loop)

    def _on_state(self, _data, _old, state, error) -> None:
        with self._cond:
            self.state = state
            if error:
                self.error = ffi.string(error).decode()
            self._cond.notify_all()

    def _on_param(self, _data, param_id, param) -> None:
        # Once a consumer fixed the format, say what buffers and metadata we fill.
        if param_id == sv.PARAM_FORMAT and param != ffi.NULL:
            self._offer_buffers()

    def _offer_buffers(self) -> None:
        size = self.stride * self.height
        buffers = Object(sv.TYPE_OBJECT_PARAM_BUFFERS, sv.PARAM_BUFFERS, (
            Prop(sv.BUFFERS_BUFFERS, Int(4)), Prop(sv.BUFFERS_BLOCKS, Int(1)),
            Prop(sv.BUFFERS_SIZE, Int(size)), Prop(sv.BUFFERS_STRIDE, Int(self.stride)),
            Prop(sv.BUFFERS_DATATYPE, Choice(CHOICE_FLAGS, (Int(
                1 << (sv.DATA_DMABUF if self.dmabuf else sv.DATA_MEMFD)),)))))
        metas = [Object(sv.TYPE_OBJECT_PARAM_META, sv.PARAM_META,
                        (Prop(sv.META_TYPE, Id(kind)), Prop(sv.META_SIZE, Int(size))))
                 for kind, size in ((sv.META_HEADER, sv.META_HEADER_SIZE),
                                    (sv.META_VIDEO_DAMAGE, sv.META_REGION_SIZE * 4))]
        if self.cursor:
            metas.append(Object(sv.TYPE_OBJECT_PARAM_META, sv.PARAM_META, (
                Prop(sv.META_TYPE, Id(sv.META_CURSOR)),
                Prop(sv.META_SIZE, Int(CURSOR_BITMAP_OFFSET + sv.META_BITMAP_SIZE
                                       + 64 * 64 * 4)))))
        params, keep = encode_params([buffers] + metas)
        self._lib.pw_stream_update_params(self._stream, params, len(params))

    def _wait(self, ready, what: str, timeout: float = START_TIMEOUT) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: ready() or self.state == pw.STATE_ERROR,
                                       timeout) or self.state == pw.STATE_ERROR:
                raise SessionError(f"the producer did not {what} (state {self.state} "
                                   f"{self.error})")

    def wait_streaming(self, timeout: float = START_TIMEOUT) -> None:
        self._wait(lambda: self.state == pw.STATE_STREAMING, "start streaming", timeout)

    def push(self, pixels: np.ndarray, *, pts_ns: int | None = None, damage=None,
             cursor=None, empty: bool = False, timeout: float = 2.0) -> int:
        """Send one buffer; returns its seq.  ``pixels`` is (height, stride) uint8.
        ``cursor``: (x, y, hot_x, hot_y, bitmap (h, w, 4) or None)."""
        deadline = time.monotonic() + timeout
        lib = self._lib
        while True:
            lib.pw_thread_loop_lock(self._loop)
            try:
                buffer = lib.pw_stream_dequeue_buffer(self._stream)
                if buffer != ffi.NULL:
                    self.seq += 1
                    self._fill(buffer.buffer, pixels, pts_ns, damage, cursor, empty)
                    lib.pw_stream_queue_buffer(self._stream, buffer)
                    return self.seq
            finally:
                lib.pw_thread_loop_unlock(self._loop)
            if time.monotonic() > deadline:
                raise SessionError("the producer got no free buffer (is a consumer linked?)")
            time.sleep(0.002)

    def _fill(self, spa, pixels, pts_ns, damage, cursor, empty) -> None:
        data = spa.datas[0]
        if not empty:
            target = (ffi.from_buffer(self._memfds[int(data.fd)]) if data.data == ffi.NULL
                      else data.data)
            ffi.memmove(target, ffi.from_buffer(np.ascontiguousarray(pixels)), pixels.nbytes)
        data.chunk.offset, data.chunk.stride, data.chunk.flags = 0, self.stride, 0
        data.chunk.size = 0 if empty else self.stride * self.height
        for i in range(spa.n_metas):
            meta = spa.metas[i]
            if meta.type == sv.META_HEADER:
                header = ffi.cast("struct spa_meta_header *", meta.data)
                header.flags, header.offset, header.dts_offset = 0, 0, 0
                header.pts = time.monotonic_ns() if pts_ns is None else pts_ns
                header.seq = self.seq
            elif meta.type == sv.META_VIDEO_DAMAGE:
                regions = ffi.cast("struct spa_meta_region *", meta.data)
                rects = list(damage or [(0, 0, self.width, self.height)])[:3] + [(0, 0, 0, 0)]
                for j, (x, y, w, h) in enumerate(rects):
                    regions[j].region = {"position": {"x": x, "y": y},
                                         "size": {"width": w, "height": h}}
            elif meta.type == sv.META_CURSOR:
                write_cursor_meta(meta.data, cursor, self.spa_format)

    def close(self) -> None:
        if self._loop is None:
            return
        lib = self._lib
        lib.pw_thread_loop_lock(self._loop)
        lib.pw_stream_destroy(self._stream)
        lib.pw_core_disconnect(self._core)
        lib.pw_thread_loop_unlock(self._loop)
        lib.pw_thread_loop_stop(self._loop)
        lib.pw_context_destroy(self._context)
        lib.pw_thread_loop_destroy(self._loop)
        self._loop = None


def write_cursor_meta(pointer, cursor, spa_format: int) -> None:
    """Lay out a spa_meta_cursor (and its bitmap) the way a compositor does."""
    meta = ffi.cast("struct spa_meta_cursor *", pointer)
    if cursor is None:
        meta.id = 0
        return
    x, y, hot_x, hot_y, bitmap = cursor
    meta.id, meta.flags = 1, 0
    meta.position.x, meta.position.y = x, y
    meta.hotspot.x, meta.hotspot.y = hot_x, hot_y
    meta.bitmap_offset = 0
    if bitmap is not None:
        meta.bitmap_offset = CURSOR_BITMAP_OFFSET
        head = ffi.cast("struct spa_meta_bitmap *", ffi.cast("char *", pointer)
                        + CURSOR_BITMAP_OFFSET)
        height, width = bitmap.shape[:2]
        head.format, head.stride, head.offset = spa_format, width * 4, sv.META_BITMAP_SIZE
        head.size.width, head.size.height = width, height
        ffi.memmove(ffi.cast("char *", head) + sv.META_BITMAP_SIZE,
                    ffi.from_buffer(np.ascontiguousarray(bitmap)), bitmap.nbytes)


class ProducerProcess:
    """A VideoProducer in a child process: its own fds and buffers stay out of ours."""

    def __init__(self, session: PipeWireSession, width: int, height: int):
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(width), str(height)], env=session.env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.process.stdout.readline()
        if not line.startswith("node "):
            self.close()
            raise SessionError(f"the producer process did not start: {line!r}")
        self.node_id = int(line.split()[1])

    def push(self) -> int:
        """Push one picture (every byte = its seq % 256); returns its seq."""
        self.process.stdin.write("push\n")
        return int(self.process.stdout.readline().split()[1])

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(5)
        self.process.stdout.close()


def _serve(width: int, height: int) -> None:
    producer = VideoProducer(width, height)
    print("node", producer.node_id, flush=True)
    for line in sys.stdin:
        if line.strip() == "push":
            producer.wait_streaming()
            seq = producer.seq + 1
            producer.push(np.full((height, width * 4), seq % 256, np.uint8))
            print("seq", seq, flush=True)
    producer.close()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    _serve(int(sys.argv[1]), int(sys.argv[2]))
