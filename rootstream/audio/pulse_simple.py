"""A ctypes binding to libpulse-simple (ABI mode: no compiler, no extra wheel).

Six functions of the "simple" API are all a capture stream needs.  The same
library talks to PulseAudio and to PipeWire's pulse server, and Debian ships
it in libpulse0, so binding it directly costs less than depending on a
third-party wrapper of the same six calls.
"""

from __future__ import annotations

import ctypes
import ctypes.util

from rootstream.errors import AudioError

PA_STREAM_PLAYBACK = 1
PA_STREAM_RECORD = 2
PA_SAMPLE_S16LE = 3
DEFAULT_MONITOR = "@DEFAULT_MONITOR@"  # the monitor source of the default sink
_UNSET = 0xFFFFFFFF  # (uint32_t) -1: "let the server choose"


class SampleSpec(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("rate", ctypes.c_uint32),
                ("channels", ctypes.c_uint8)]


class BufferAttr(ctypes.Structure):
    _fields_ = [("maxlength", ctypes.c_uint32), ("tlength", ctypes.c_uint32),
                ("prebuf", ctypes.c_uint32), ("minreq", ctypes.c_uint32),
                ("fragsize", ctypes.c_uint32)]


_lib = None


def load_library() -> ctypes.CDLL:
    """Load libpulse-simple once; AudioError with a hint when it is missing."""
    global _lib
    if _lib is not None:
        return _lib
    name = ctypes.util.find_library("pulse-simple") or "libpulse-simple.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise AudioError("libpulse-simple is not installed",
                         hint="apt-get install libpulse0") from exc
    vp, cp, ip = ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)
    lib.pa_simple_new.restype = vp
    lib.pa_simple_new.argtypes = [cp, cp, ctypes.c_int, cp, cp, ctypes.POINTER(SampleSpec),
                                  vp, ctypes.POINTER(BufferAttr), ip]
    lib.pa_simple_read.restype = ctypes.c_int
    lib.pa_simple_read.argtypes = [vp, vp, ctypes.c_size_t, ip]
    lib.pa_simple_write.restype = ctypes.c_int
    lib.pa_simple_write.argtypes = [vp, vp, ctypes.c_size_t, ip]
    lib.pa_simple_drain.restype = ctypes.c_int
    lib.pa_simple_drain.argtypes = [vp, ip]
    lib.pa_simple_get_latency.restype = ctypes.c_uint64
    lib.pa_simple_get_latency.argtypes = [vp, ip]
    lib.pa_simple_free.restype = None
    lib.pa_simple_free.argtypes = [vp]
    lib.pa_strerror.restype = cp
    lib.pa_strerror.argtypes = [ctypes.c_int]
    _lib = lib
    return lib


class PulseStream:
    """One blocking pa_simple stream of interleaved s16le frames.

    ``latency_ms`` asks the server for that much buffering: for a record
    stream it sets ``fragsize`` (how often data is delivered), for playback
    ``tlength`` (how far ahead of the device the client may write).
    ctypes drops the GIL around every call, so a blocked read stalls no
    other thread.
    """

    def __init__(self, direction: int, *, server: str | None = None, device: str | None = None,
                 rate: int = 48000, channels: int = 2, latency_ms: float = 10.0,
                 app_name: str = "rootstream", stream_name: str = "capture"):
        lib = load_library()
        self._lib = lib
        self.rate, self.channels = rate, channels
        self.frame_bytes = 2 * channels
        spec = SampleSpec(PA_SAMPLE_S16LE, rate, channels)
        size = int(rate * latency_ms / 1000) * self.frame_bytes
        if direction == PA_STREAM_RECORD:
            attr = BufferAttr(_UNSET, _UNSET, _UNSET, _UNSET, size)
        else:
            attr = BufferAttr(_UNSET, size, _UNSET, _UNSET, _UNSET)
        err = ctypes.c_int(0)
        self._handle = lib.pa_simple_new(
            server.encode() if server else None, app_name.encode(), direction,
            device.encode() if device else None, stream_name.encode(), ctypes.byref(spec),
            None, ctypes.byref(attr), ctypes.byref(err))
        if not self._handle:
            raise AudioError("cannot connect to the PulseAudio server",
                             hint="is PulseAudio or pipewire-pulse running? (pactl info)",
                             details=[self._strerror(err.value),
                                      f"server={server or 'default'} device={device or 'default'}"])

    def _strerror(self, code: int) -> str:
        return (self._lib.pa_strerror(code) or b"unknown error").decode(errors="replace")

    def _check_open(self) -> None:
        if not self._handle:
            raise AudioError("PulseAudio stream is closed")

    def read_into(self, buffer: bytearray | memoryview) -> None:
        """Fill ``buffer`` completely, blocking until the server has the data."""
        self._check_open()
        err = ctypes.c_int(0)
        view = (ctypes.c_char * len(buffer)).from_buffer(buffer)
        if self._lib.pa_simple_read(self._handle, view, len(buffer), ctypes.byref(err)) < 0:
            raise AudioError("PulseAudio read failed", details=[self._strerror(err.value)])

    def write(self, data: bytes) -> None:
        self._check_open()
        err = ctypes.c_int(0)
        if self._lib.pa_simple_write(self._handle, data, len(data), ctypes.byref(err)) < 0:
            raise AudioError("PulseAudio write failed", details=[self._strerror(err.value)])

    def drain(self) -> None:
        self._check_open()
        err = ctypes.c_int(0)
        if self._lib.pa_simple_drain(self._handle, ctypes.byref(err)) < 0:
            raise AudioError("PulseAudio drain failed", details=[self._strerror(err.value)])

    def latency_ns(self) -> int:
        """Record: age of the oldest unread sample.  Playback: time until a write is heard."""
        self._check_open()
        err = ctypes.c_int(0)
        usec = self._lib.pa_simple_get_latency(self._handle, ctypes.byref(err))
        if usec == 0xFFFFFFFFFFFFFFFF:
            raise AudioError("PulseAudio latency query failed", details=[self._strerror(err.value)])
        return int(usec) * 1000

    def close(self) -> None:
        if self._handle:
            self._lib.pa_simple_free(self._handle)
            self._handle = None

    def __enter__(self) -> PulseStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
