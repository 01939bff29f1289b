"""The unit of sound between capture and the encoder: PCM and its capture stamp."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RATE = 48000  # Opus's native rate; every stage runs at it, so nothing resamples
CHANNELS = 2


@dataclass(slots=True)
class AudioChunk:
    """Interleaved signed 16-bit PCM, shape (samples, channels).

    ``captured_ns`` is the host ``time.monotonic_ns()`` at which the first
    sample entered the capture device, on the same clock as video capture
    stamps; ``position`` is the backend's running sample index of that sample.
    """

    pcm: np.ndarray
    captured_ns: int
    position: int

    @property
    def samples(self) -> int:
        return int(self.pcm.shape[0])


def samples_to_ns(samples: int | float, rate: int = RATE) -> int:
    return int(round(samples * 1_000_000_000 / rate))
