"""A numpy model of the NV12 integer formula, and tests pinning it to H.273.

tests/test_convert.py holds every native path to this model bit for bit; the
tests here hold the model itself to the real-valued ITU-T H.273 equations, so
the native code is tied to the standard through one short, readable function.
"""

from __future__ import annotations

import numpy as np
import pytest

SHIFT = 15
KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}
FORMATS = ("BGRX", "BGRA", "RGBX", "RGBA")


def coefficients(matrix: str, full_range: bool) -> dict:
    """The fixed-point table, derived as nv12.h writes it down (R, G, B order)."""
    kr, kb = KR_KB[matrix]
    one = 1 << SHIFT
    sy = 1.0 if full_range else 219 / 255
    sc = 1.0 if full_range else 224 / 255
    yr, yb = round(kr * sy * one), round(kb * sy * one)
    ub, ur = round(sc / 2 * one), round(-kr / (2 * (1 - kb)) * sc * one)
    vr, vb = round(sc / 2 * one), round(-kb / (2 * (1 - kr)) * sc * one)
    return {
        "y": (yr, round(sy * one) - yr - yb, yb),
        "u": (ur, -ub - ur, ub),
        "v": (vr, -vr - vb, vb),
        "y_bias": (0 if full_range else 16 << SHIFT) + (1 << (SHIFT - 1)),
        "c_bias": (128 << (SHIFT + 2)) + (1 << (SHIFT + 1)),
        "shift": SHIFT,
    }


def rgb_planes(pixels: np.ndarray, pixel_format: str):
    """(h, w, 4) uint8 -> R, G, B as int64 planes."""
    p = pixels.astype(np.int64)
    first, green, third = p[..., 0], p[..., 1], p[..., 2]
    return (third, green, first) if pixel_format.startswith("BGR") else (first, green, third)


def block_sums(plane: np.ndarray) -> np.ndarray:
    """Sums of 2x2 blocks; an odd last column/row repeats the one before it."""
    if plane.shape[1] % 2:
        plane = np.concatenate([plane, plane[:, -1:]], axis=1)
    if plane.shape[0] % 2:
        plane = np.concatenate([plane, plane[-1:, :]], axis=0)
    return plane[0::2, 0::2] + plane[0::2, 1::2] + plane[1::2, 0::2] + plane[1::2, 1::2]


def reference(pixels: np.ndarray, pixel_format: str = "BGRX", matrix: str = "bt709",
              full_range: bool = False):
    """Y (h, w), U and V ((h+1)//2, (w+1)//2) for (h, w, 4) uint8 pixels."""
    k = coefficients(matrix, full_range)
    r, g, b = rgb_planes(pixels, pixel_format)
    yr, yg, yb = k["y"]
    y = (yr * r + yg * g + yb * b + k["y_bias"]) >> SHIFT
    rs, gs, bs = block_sums(r), block_sums(g), block_sums(b)
    chroma = []
    for cr, cg, cb in (k["u"], k["v"]):
        chroma.append((cr * rs + cg * gs + cb * bs + k["c_bias"]) >> (SHIFT + 2))
    return tuple(np.clip(plane, 0, 255).astype(np.uint8) for plane in (y, *chroma))


def reference_nv12(pixels, pixel_format="BGRX", matrix="bt709", full_range=False):
    """Y and the interleaved UV plane."""
    y, u, v = reference(pixels, pixel_format, matrix, full_range)
    uv = np.empty((u.shape[0], u.shape[1] * 2), np.uint8)
    uv[:, 0::2], uv[:, 1::2] = u, v
    return y, uv


def h273(pixels: np.ndarray, pixel_format: str, matrix: str, full_range: bool):
    """The real-valued equations: Y per pixel, U/V of each block's mean."""
    kr, kb = KR_KB[matrix]
    r, g, b = (plane / 255.0 for plane in rgb_planes(pixels, pixel_format))
    y = kr * r + (1 - kr - kb) * g + kb * b
    means = [block_sums(plane) / 4 for plane in (r, g, b)]
    y_mean = kr * means[0] + (1 - kr - kb) * means[1] + kb * means[2]
    pb = (means[2] - y_mean) / (2 * (1 - kb))
    pr = (means[0] - y_mean) / (2 * (1 - kr))
    if full_range:
        return 255 * y, 255 * pb + 128, 255 * pr + 128
    return 219 * y + 16, 224 * pb + 128, 224 * pr + 128


COMBOS = [(f, m, full) for f in FORMATS for m in KR_KB for full in (False, True)]


@pytest.mark.parametrize("pixel_format,matrix,full_range", COMBOS)
def test_reference_rounds_the_h273_values(pixel_format, matrix, full_range):
    pixels = np.random.default_rng(7).integers(0, 256, (33, 47, 4), dtype=np.uint8)
    exact = h273(pixels, pixel_format, matrix, full_range)
    for got, want in zip(reference(pixels, pixel_format, matrix, full_range), exact, strict=True):
        want = np.clip(want, 0, 255)
        # 0.5 for rounding, plus what 15-bit coefficients can move a value.
        assert np.abs(got - want).max() <= 0.5 + 3 * 255 / 2**SHIFT


@pytest.mark.parametrize("matrix", KR_KB)
@pytest.mark.parametrize("full_range,black,white", [(False, 16, 235), (True, 0, 255)])
def test_reference_black_white_and_greys(matrix, full_range, black, white):
    greys = np.repeat(np.arange(256, dtype=np.uint8), 4).reshape(1, 256, 4)
    greys = np.repeat(greys, 2, axis=0)
    y, u, v = reference(greys, "BGRX", matrix, full_range)
    assert (y[0, 0], y[0, 255]) == (black, white)
    assert (u == 128).all() and (v == 128).all()
    assert (np.diff(y[0].astype(int)) >= 0).all()


def test_reference_primaries_bt709_limited():
    # Values from BT.709 with 8-bit limited range: red, green, blue.
    pixels = np.array([[[0, 0, 255, 0], [0, 255, 0, 0], [255, 0, 0, 0]]], np.uint8)
    y, _, _ = reference(pixels, "BGRX", "bt709", False)
    assert y.tolist() == [[63, 173, 32]]
    for column, (u, v) in enumerate([(102, 240), (42, 26), (240, 118)]):
        _, us, vs = reference(pixels[:, column:column + 1], "BGRX", "bt709", False)
        assert (us[0, 0], vs[0, 0]) == (u, v)


def test_reference_odd_edges_average_what_exists():
    pixels = np.zeros((3, 3, 4), np.uint8)
    pixels[:, :, 2] = [[0, 100, 201], [0, 100, 201], [7, 9, 50]]  # R of BGRX
    _, u, v = reference(pixels, "BGRX", "bt601", True)
    k = coefficients("bt601", True)
    # Block means: a full block, the right edge (2 pixels), the bottom edge
    # (2 pixels) and the corner (1 pixel); all are whole numbers here.
    for (row, col), mean_red in {(0, 0): 50, (0, 1): 201, (1, 0): 8, (1, 1): 50}.items():
        want_u = (k["u"][0] * mean_red * 4 + k["c_bias"]) >> (SHIFT + 2)
        want_v = (k["v"][0] * mean_red * 4 + k["c_bias"]) >> (SHIFT + 2)
        assert (u[row, col], v[row, col]) == (want_u, want_v)
