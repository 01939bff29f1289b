"""The `pulse` capture backend: the monitor of the default sink, i.e. what the
host is playing, through libpulse-simple (PulseAudio or pipewire-pulse).

Stamping: the sink renders sound into the monitor as it plays, and a read
returns as soon as the chunk is complete.  So ``t_return - n/rate`` bounds
when the chunk's first sample was rendered, from above: scheduling can only
make a read return later, never earlier.  The device clock is steady, so
``offset = t_return - position_end/rate`` is constant but for that
lateness, and the lower envelope of the offsets over the last second is the
clock line every stamp sits on.  The server's own latency figure is kept for
diagnostics only: for a monitor source it reads 0 once running, and for the
first second or so after a stream opens it reads hundreds of milliseconds
(its timing data is not in yet) while data arrives in real time, so trusting
it would stamp the sound far too early.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from rootstream.audio.capture.base import AudioCapture
from rootstream.audio.chunk import AudioChunk, samples_to_ns
from rootstream.audio.pulse_simple import DEFAULT_MONITOR, PA_STREAM_RECORD, PulseStream


class PulseCapture(AudioCapture):
    name = "pulse"

    def __init__(self, *, server: str | None = None, device: str = DEFAULT_MONITOR,
                 chunk_samples: int = 480, latency_ms: float | None = None):
        if chunk_samples <= 0:
            raise ValueError("chunk_samples must be positive")
        self.chunk_samples = chunk_samples
        if latency_ms is None:
            latency_ms = chunk_samples * 1000 / self.rate
        self._stream = PulseStream(PA_STREAM_RECORD, server=server, device=device,
                                   rate=self.rate, channels=self.channels,
                                   latency_ms=latency_ms, stream_name="rootstream capture")
        self._buffer = bytearray(chunk_samples * self.channels * 2)
        self._stamp: int | None = None
        # One second of offsets: long enough to contain a timely read, short
        # enough to follow drift between the sound clock and the monotonic one.
        self._offsets: deque[int] = deque(maxlen=max(1, self.rate // chunk_samples))
        self.position = 0
        self.last_latency_ns = 0  # the server's latency figure at the last read, for stats

    def read(self) -> AudioChunk:
        n = self.chunk_samples
        self._stream.read_into(self._buffer)
        now = time.monotonic_ns()
        self.last_latency_ns = self._stream.latency_ns()
        end = self.position + n
        offset = now - samples_to_ns(end, self.rate)
        self._offsets.append(offset)
        stamp = min(self._offsets) + samples_to_ns(self.position, self.rate)
        if self._stamp is not None:
            stamp = max(stamp, self._stamp + 1)  # a capture clock never runs backwards
        self._stamp = stamp
        pcm = np.frombuffer(self._buffer, dtype="<i2").reshape(n, self.channels).copy()
        chunk = AudioChunk(pcm, stamp, self.position)
        self.position = end
        return chunk

    def close(self) -> None:
        self._stream.close()
