"""A synthetic NV12 picture to prove an encoder or a decoder with."""

from __future__ import annotations

import av
import numpy as np

# 75% colour bars: white, yellow, cyan, green, magenta, red, blue, black (RGB 0..1).
_BARS = np.array([[.75, .75, .75], [.75, .75, 0], [0, .75, .75], [0, .75, 0],
                  [.75, 0, .75], [.75, 0, 0], [0, 0, .75], [0, 0, 0]])


def _bt709_limited(rgb: np.ndarray) -> np.ndarray:
    """RGB in 0..1 to (Y, Cb, Cr) codes, BT.709 matrix, limited range."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    luma = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return np.stack([16 + 219 * luma,
                     128 + 224 * (b - luma) / 1.8556,
                     128 + 224 * (r - luma) / 1.5748], axis=-1).round().astype(np.uint8)


def pattern_nv12(width: int, height: int, index: int = 0) -> av.VideoFrame:
    """A synthetic NV12 picture (BT.709 limited): colour bars over the top half,
    a luma ramp below, and a white square that moves 8 pixels per ``index``.

    Real enough to prove an encoder (flat grey proves little), cheap enough
    to make per frame in tests and benchmarks.
    """
    frame = av.VideoFrame(width, height, "nv12")
    y_plane, uv_plane = frame.planes
    luma = np.frombuffer(y_plane, np.uint8).reshape(-1, y_plane.line_size)[:height, :width]
    chroma = np.frombuffer(uv_plane, np.uint8).reshape(-1, uv_plane.line_size)[:height // 2, :width]
    bars = _bt709_limited(_BARS)[np.arange(width) * len(_BARS) // width]  # (width, 3)
    half = height // 2
    luma[:half] = bars[:, 0]
    luma[half:] = (16 + np.arange(width) * 219 // max(width - 1, 1)).astype(np.uint8)
    chroma[:half // 2, 0::2] = bars[0::2, 1]
    chroma[:half // 2, 1::2] = bars[0::2, 2]
    chroma[half // 2:] = 128
    size = max(2, (height // 8) & ~1)
    x = (index * 8) % max(width - size, 1) & ~1
    y = (half - size // 2) & ~1
    luma[y:y + size, x:x + size] = 235
    chroma[y // 2:(y + size) // 2, x:x + size] = 128
    return frame
