"""A PCM FIFO that plays out at a ratio a hair away from 1.

Host and client sound clocks never agree exactly (±0.1% is common), so the
jitter buffer consumes decoded audio at ``ratio`` input samples per output
sample, with ``ratio`` within a fraction of a percent of 1: a pitch change
of a few cents, which nobody hears, instead of a click when a buffer runs
dry or overflows.  Samples are interpolated with a 4-point cubic (Catmull-Rom)
whose response stays flat far higher than linear interpolation's, and the
read position carries its fraction across calls so reads join seamlessly.
At exactly 1 with no fraction pending, a read is a plain copy.

Every sample carries the host capture stamp it came with, so what comes out
still says when it was captured (lip sync needs that).
"""

from __future__ import annotations

import numpy as np

from rootstream.audio.chunk import RATE


class StretchFifo:
    def __init__(self, channels: int, rate: int = RATE):
        self.channels = channels
        self.sample_ns = 1_000_000_000 / rate
        # Row 0 is history: the sample before the read position, which the cubic needs.
        self._buf = np.zeros((1, channels), np.float32)
        self._stamps = np.zeros(1, np.int64)
        self._frac = 0.0

    @property
    def readable(self) -> int:
        return self._buf.shape[0] - 1

    def append(self, pcm: np.ndarray, stamps: np.ndarray) -> None:
        self._buf = np.concatenate([self._buf, pcm.astype(np.float32, copy=False)])
        self._stamps = np.concatenate([self._stamps, stamps])

    def needed(self, samples: int, ratio: float) -> int:
        """Readable samples a ``read(samples, ratio)`` needs."""
        if ratio == 1.0 and self._frac == 0.0:
            return samples
        last = self._frac + (samples - 1) * ratio
        return int(last) + 3  # the cubic looks two samples past its left neighbour

    def peak(self, samples: int) -> float:
        return float(np.abs(self._buf[1:1 + samples]).max(initial=0.0))

    def skip(self, samples: int) -> None:
        """Drop ``samples`` unread samples (used only where they are silent)."""
        samples = min(samples, self.readable)
        self._buf = self._buf[samples:]
        self._stamps = self._stamps[samples:]

    def cut(self, samples: int, fade: int, search: int = 0) -> int:
        """Remove about ``samples`` unread samples that are not silent.

        The length is chosen within ``samples ± search`` where the sound after
        the cut best matches the sound before it (highest correlation over
        the ``fade`` window), then the seam is crossfaded: on tonal sound the
        two sides are then in phase and the cut is a blend, not a click.
        Returns how many samples were removed.
        """
        if self.readable < samples + search + fade:
            raise ValueError("StretchFifo.cut needs more samples than it holds")
        head = self._buf[1:1 + fade]
        if search:
            lo = samples - min(search, samples - 1)
            span = self._buf[1 + lo:1 + samples + search + fade].mean(axis=1)
            windows = np.lib.stride_tricks.sliding_window_view(span, fade)
            ref = head.mean(axis=1)
            score = windows @ ref / (np.sqrt((windows * windows).sum(axis=1)) + 1e-3)
            samples = lo + int(np.argmax(score))
        w = ((np.arange(fade, dtype=np.float32) + 0.5) / fade)[:, None]
        joined = head * (1 - w) + self._buf[1 + samples:1 + samples + fade] * w
        self._buf = np.concatenate([self._buf[:1], joined, self._buf[1 + samples + fade:]])
        self._stamps = np.concatenate([self._stamps[:1], self._stamps[1 + samples:]])
        return samples

    def insert_silence(self, samples: int) -> None:
        """Put ``samples`` of silence at the read position (used only in silence).

        They carry the stamps the samples before the next one would have had,
        so the measured delay steps up by exactly their length.
        """
        first = self._stamps[1] if self.readable else self._stamps[0]
        stamps = (first - (samples - np.arange(samples)) * self.sample_ns).astype(np.int64)
        self._buf = np.concatenate([self._buf[:1], np.zeros((samples, self.channels), np.float32),
                                    self._buf[1:]])
        self._stamps = np.concatenate([self._stamps[:1], stamps, self._stamps[1:]])

    def read(self, samples: int, ratio: float) -> tuple[np.ndarray, int]:
        """``samples`` output samples and the capture stamp of the first one."""
        if self.needed(samples, ratio) > self.readable:
            raise ValueError("StretchFifo.read needs more samples than it holds")
        if ratio == 1.0 and self._frac == 0.0:
            out = self._buf[1:1 + samples]
            stamp = int(self._stamps[1])
            self._buf = self._buf[samples:]
            self._stamps = self._stamps[samples:]
            return out, stamp
        pos = self._frac + np.arange(samples) * ratio
        i = pos.astype(np.int64) + 1
        t = (pos - (i - 1)).astype(np.float32)[:, None]
        xm1, x0, x1, x2 = self._buf[i - 1], self._buf[i], self._buf[i + 1], self._buf[i + 2]
        out = x0 + 0.5 * t * (x1 - xm1 + t * (2 * xm1 - 5 * x0 + 4 * x1 - x2
                                               + t * (3 * (x0 - x1) + x2 - xm1)))
        s0, s1 = self._stamps[1], self._stamps[2]
        stamp = int(s0 + self._frac * (s1 - s0))
        end = self._frac + samples * ratio
        consumed = int(end)
        self._frac = end - consumed
        self._buf = self._buf[consumed:]
        self._stamps = self._stamps[consumed:]
        return out, stamp
