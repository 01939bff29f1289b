"""A test sound whose samples say when they were captured.

A continuous tone sweeps up and down between two frequencies (so a codec
cannot cheat on a steady sine), and every ``mark_period_ms`` a short
Hann-windowed burst at ``mark_hz`` starts exactly on a multiple of the
period in sample positions.  Position p was captured at
``start_ns + p / rate``, so whoever finds a burst in played-back audio knows
which instant of the host's clock it shows: that is how tests and the bench
measure audio latency and A/V offset without trusting any stamp.
"""

from __future__ import annotations

import math

import numpy as np

from rootstream.audio.chunk import CHANNELS, RATE


class ToneSignal:
    """Deterministic in position: ``render(p, n)`` is the same whoever calls it."""


    def __init__(self, *, rate: int = RATE, channels: int = CHANNELS,
                 sweep_hz: tuple[float, float] = (300.0, 1200.0), sweep_period_s: float = 2.0,
                 level: float = 0.25, mark_period_ms: float = 100.0, mark_hz: float = 6000.0,
                 mark_ms: float = 4.0, mark_level: float = 0.3):
        self.rate, self.channels = rate, channels
        self.f0, self.f1 = sweep_hz
        self.period = sweep_period_s
        self.level = level
        self.mark_period = int(round(mark_period_ms * rate / 1000))
        self.mark_len = int(round(mark_ms * rate / 1000))
        if not 0 < self.mark_len < self.mark_period:
            raise ValueError("a mark must be shorter than the mark period")
        self.mark_hz = mark_hz
        self.mark_level = mark_level
        self._cycles_per_period = (self.f0 + self.f1) / 2 * self.period

    def _sweep_cycles(self, t: np.ndarray) -> np.ndarray:
        """Integral of the triangular frequency law, in cycles, modulo whole periods."""
        whole, u = np.divmod(t, self.period)
        half = self.period / 2
        slope = (self.f1 - self.f0) / self.period
        rising = self.f0 * u + slope * u * u
        v = u - half
        falling = self.f0 * half + slope * half * half + self.f1 * v - slope * v * v
        within = np.where(u < half, rising, falling)
        return np.mod(whole * self._cycles_per_period, 1.0) + within

    def render_float(self, position: int, samples: int) -> np.ndarray:
        """Mono float samples in [-1, 1] for positions [position, position + samples)."""
        pos = np.arange(position, position + samples, dtype=np.int64)
        tone = self.level * np.sin(2 * math.pi * self._sweep_cycles(pos / self.rate))
        offset = pos % self.mark_period
        in_mark = offset < self.mark_len
        if in_mark.any():
            k = offset[in_mark]
            window = 0.5 - 0.5 * np.cos(2 * math.pi * (k + 0.5) / self.mark_len)
            burst = np.sin(2 * math.pi * self.mark_hz * k / self.rate)
            tone[in_mark] += self.mark_level * window * burst
        return tone

    def render(self, position: int, samples: int) -> np.ndarray:
        """Interleaved int16 PCM, shape (samples, channels)."""
        mono = np.round(self.render_float(position, samples) * 32767).astype(np.int16)
        return np.repeat(mono[:, None], self.channels, axis=1)


def find_marks(pcm: np.ndarray, *, rate: int = RATE, mark_hz: float = 6000.0,
               mark_ms: float = 4.0, threshold: float = 0.5) -> np.ndarray:
    """Sample indices (float) where mark bursts start in ``pcm``.

    The signal is demodulated at ``mark_hz`` and smoothed over half a mark:
    the tone below is several kHz away and averages out, the burst's envelope
    peaks at its centre, and the onset is that centre minus half a mark.
    """
    x = pcm.astype(np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.size == 0:
        return np.zeros(0)
    peak = np.abs(x).max() or 1.0
    x = x / peak
    mark_len = mark_ms * rate / 1000
    width = max(int(mark_len), 1)
    n = np.arange(x.size)
    baseband = x * np.exp(-2j * math.pi * mark_hz * n / rate)
    env = np.abs(np.convolve(baseband, np.ones(width) / width, mode="same"))
    if env.max() <= 0:
        return np.zeros(0)
    above = (env > threshold * env.max()).astype(np.int8)
    rising = np.flatnonzero(np.diff(above) == 1) + 1
    falling = np.flatnonzero(np.diff(above) == -1) + 1
    onsets: list[float] = []
    peaks: list[float] = []
    for r in rising:
        later = falling[falling > r]
        if later.size == 0:
            break  # a burst cut off by the end of the buffer is not measurable
        region = env[r:later[0]] ** 2
        centre = r + float(np.dot(np.arange(region.size), region) / region.sum())
        # Ripple near the threshold can split one burst in two: keep the stronger half.
        if onsets and centre - (onsets[-1] + mark_len / 2) < 2 * mark_len:
            if region.max() <= peaks[-1]:
                continue
            onsets.pop()
            peaks.pop()
        onsets.append(centre - mark_len / 2)
        peaks.append(float(region.max()))
    return np.asarray(onsets)
