"""The `test` capture backend: a timed test signal instead of a sound card.

Chunks are paced by the monotonic clock like a real device (``realtime``),
and position p is stamped ``start_ns + p / rate`` exactly, so the marks in
the signal (see tone.py) tell any listener when they were captured.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rootstream.audio.capture.base import AudioCapture
from rootstream.audio.chunk import AudioChunk, samples_to_ns
from rootstream.audio.tone import ToneSignal


class ToneCapture(AudioCapture):
    name = "test"

    def __init__(self, *, chunk_samples: int = 480, realtime: bool = True,
                 clock: Callable[[], int] = time.monotonic_ns, **signal_opts):
        if chunk_samples <= 0:
            raise ValueError("chunk_samples must be positive")
        self.signal = ToneSignal(rate=self.rate, channels=self.channels, **signal_opts)
        self.chunk_samples = chunk_samples
        self.realtime = realtime
        self._clock = clock
        self.start_ns = clock()
        self.position = 0

    def captured_ns_at(self, position: int) -> int:
        """When sample ``position`` was captured: the truth marks are measured against."""
        return self.start_ns + samples_to_ns(position, self.rate)

    def read(self) -> AudioChunk:
        n = self.chunk_samples
        if self.realtime:
            # A device hands a chunk over once its last sample has been captured.
            due = self.captured_ns_at(self.position + n)
            wait = due - self._clock()
            if wait > 0:
                time.sleep(wait / 1e9)
        chunk = AudioChunk(self.signal.render(self.position, n),
                           self.captured_ns_at(self.position), self.position)
        self.position += n
        return chunk

    def close(self) -> None:
        pass
