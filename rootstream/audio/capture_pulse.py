"""The `pulse` capture backend: the monitor of the default sink, i.e. what the
host is playing, through libpulse-simple (PulseAudio or pipewire-pulse).

Stamping: when a read of n samples returns at t, the server reports the age
L of the oldest sample still unread (the one right after ours), so our first
sample entered the sink at t - L - n/rate.  That measurement jitters with
scheduling; a device clock does not, so the stamp advances by exactly n/rate
per chunk and is pulled a sixteenth of the way toward each measurement
(snapping when they disagree by more than a glitch, e.g. after an overrun).
"""

from __future__ import annotations

import time

import numpy as np

from rootstream.audio.capture import AudioCapture
from rootstream.audio.chunk import AudioChunk, samples_to_ns
from rootstream.audio.pulse_simple import DEFAULT_MONITOR, PA_STREAM_RECORD, PulseStream

RESYNC_NS = 20_000_000


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
        self.position = 0
        self.last_latency_ns = 0  # the server's latency at the last read, for stats

    def read(self) -> AudioChunk:
        n = self.chunk_samples
        self._stream.read_into(self._buffer)
        now = time.monotonic_ns()
        self.last_latency_ns = self._stream.latency_ns()
        measured = now - self.last_latency_ns - samples_to_ns(n, self.rate)
        if self._stamp is None:
            stamp = measured
        else:
            predicted = self._stamp + samples_to_ns(n, self.rate)
            error = measured - predicted
            stamp = measured if abs(error) > RESYNC_NS else predicted + error // 16
            stamp = max(stamp, self._stamp + 1)
        self._stamp = stamp
        pcm = np.frombuffer(self._buffer, dtype="<i2").reshape(n, self.channels).copy()
        chunk = AudioChunk(pcm, stamp, self.position)
        self.position += n
        return chunk

    def close(self) -> None:
        self._stream.close()
