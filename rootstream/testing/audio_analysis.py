"""Measurements on PCM: what tests, benchmarks and `doctor` ask of a sound."""

from __future__ import annotations

import numpy as np

from rootstream.audio.chunk import RATE


def _mono(pcm: np.ndarray) -> np.ndarray:
    x = pcm.astype(np.float64)
    return x.mean(axis=1) if x.ndim == 2 else x


def dominant_hz(pcm: np.ndarray, rate: int = RATE) -> float:
    """Frequency of the strongest spectral peak (Hann window, parabolic refinement)."""
    x = _mono(pcm)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    k = int(np.argmax(spectrum[1:])) + 1
    if 1 <= k < spectrum.size - 1:
        a, b, c = np.log(spectrum[k - 1:k + 2] + 1e-12)
        k += 0.5 * (a - c) / (a - 2 * b + c)
    return k * rate / x.size


def level_dbfs(pcm: np.ndarray) -> float:
    """RMS level relative to a full-scale square wave (a full-scale sine is -3 dBFS)."""
    x = _mono(pcm) / 32768.0
    rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
    return 20 * np.log10(max(rms, 1e-10))


def longest_quiet_ms(pcm: np.ndarray, rate: int = RATE, threshold: float = 100.0) -> float:
    """Longest run of samples whose 1 ms peak stays below ``threshold`` (a gap)."""
    x = np.abs(_mono(pcm))
    block = rate // 1000
    blocks = x[: x.size // block * block].reshape(-1, block).max(axis=1)
    quiet = np.concatenate([[False], blocks < threshold, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(quiet))
    runs = edges[1::2] - edges[::2]
    return float(runs.max()) if runs.size else 0.0
