"""The frame marker: layout pinned, round trips, damage detected, scaling tolerated."""

from __future__ import annotations

import binascii

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rootstream.marker import (
    CELL,
    COLUMNS,
    MARKER_HEIGHT,
    MARKER_WIDTH,
    ROWS,
    Marker,
    draw_marker,
    marker_cells,
    read_marker_bgrx,
    read_marker_y,
)

WIDTH, HEIGHT = 1280, 720
u32 = st.integers(0, 0xFFFFFFFF)


def noise(seed: int, width: int = WIDTH, height: int = HEIGHT, stride: int | None = None):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, stride or width * 4), dtype=np.uint8)


def luma_of(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """The Y plane PyAV's own BGRA -> yuv420p conversion makes of a BGRX picture."""
    frame = av.VideoFrame.from_ndarray(pixels[:height, : width * 4].reshape(height, width, 4),
                                       format="bgra").reformat(format="yuv420p")
    plane = frame.planes[0]
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)


def test_layout_is_pinned():
    # 0x01020304, 0xA0B0C0D0, CRC-16/CCITT-FALSE of those 8 bytes = 0x9848.
    assert binascii.crc_hqx(bytes.fromhex("01020304a0b0c0d0"), 0xFFFF) == 0x9848
    drawn = ["".join("#" if cell else "." for cell in row)
             for row in marker_cells(0x01020304, 0xA0B0C0D0)]
    assert drawn == [
        "#.#.#.#.#.#.#.#.#.#.#",
        "........#......#.....",
        "#..##.....#..#.#.....",
        ".#.##....##......##.#",
        "#....#..##....#..#...",
    ]
    assert (MARKER_WIDTH, MARKER_HEIGHT) == (CELL * COLUMNS, CELL * ROWS) == (336, 80)


def test_draw_writes_only_the_corner_in_pure_black_and_white():
    pixels = noise(1)
    before = pixels.copy()
    draw_marker(pixels, WIDTH, HEIGHT, 7, 9)
    corner = pixels[:MARKER_HEIGHT, : MARKER_WIDTH * 4]
    assert set(np.unique(corner)) <= {0, 255}
    pixels[:MARKER_HEIGHT, : MARKER_WIDTH * 4] = before[:MARKER_HEIGHT, : MARKER_WIDTH * 4]
    assert np.array_equal(pixels, before)


@settings(max_examples=60, deadline=None)
@given(frame_number=u32, capture_ms=u32, seed=st.integers(0, 2**32 - 1))
def test_round_trip_over_any_background(frame_number, capture_ms, seed):
    pixels = noise(seed, 640, 360, stride=640 * 4 + 64)  # a padded stride, as X and DRM give
    draw_marker(pixels, 640, 360, frame_number, capture_ms)
    expected = Marker(frame_number, capture_ms)
    assert read_marker_bgrx(pixels, 640, 360) == expected
    assert read_marker_y(pixels.reshape(360, -1)[:, 1::4], 640, 360) == expected  # green as luma


@pytest.mark.parametrize("seed", range(20))
def test_noise_reads_as_nothing(seed):
    assert read_marker_bgrx(noise(seed), WIDTH, HEIGHT) is None
    assert read_marker_y(noise(seed, WIDTH // 4, HEIGHT), WIDTH, HEIGHT) is None


@pytest.mark.parametrize("level", [0, 128, 255])
def test_flat_picture_reads_as_nothing(level):
    assert read_marker_y(np.full((HEIGHT, WIDTH), level, np.uint8), WIDTH, HEIGHT) is None


def test_every_single_damaged_cell_is_caught():
    pixels = noise(2)
    draw_marker(pixels, WIDTH, HEIGHT, 123456789, 987654321)
    y = luma_of(pixels, WIDTH, HEIGHT)
    assert read_marker_y(y, WIDTH, HEIGHT) == Marker(123456789, 987654321)
    for row in range(ROWS):
        for column in range(COLUMNS):
            damaged = y.copy()
            cell = damaged[row * CELL:(row + 1) * CELL, column * CELL:(column + 1) * CELL]
            cell[...] = 255 - cell
            assert read_marker_y(damaged, WIDTH, HEIGHT) is None, (row, column)


@pytest.mark.parametrize("scale", [0.5, 0.75, 1.5, 2.0])
def test_scaled_picture_still_reads(scale):
    pixels = noise(3)
    draw_marker(pixels, WIDTH, HEIGHT, 4242, 0xFFFFFFFF)
    width, height = int(WIDTH * scale), int(HEIGHT * scale)
    frame = av.VideoFrame.from_ndarray(pixels.reshape(HEIGHT, WIDTH, 4), format="bgra")
    scaled = frame.reformat(width=width, height=height, format="yuv420p",
                            interpolation="BILINEAR")
    plane = scaled.planes[0]
    y = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    assert read_marker_y(y, width, height) == Marker(4242, 0xFFFFFFFF)


def test_too_much_scaling_reads_as_nothing_rather_than_wrong():
    pixels = noise(4)
    draw_marker(pixels, WIDTH, HEIGHT, 5, 6)
    # Every fourth pixel of every fourth row: 4-pixel cells, below the 0.5x floor.
    quarter = pixels.reshape(HEIGHT, WIDTH, 4)[::4, ::4].reshape(HEIGHT // 4, -1).copy()
    assert read_marker_bgrx(quarter, WIDTH // 4, HEIGHT // 4) is None


def test_bad_arguments_are_refused():
    pixels = noise(5, 320, 240)
    with pytest.raises(ValueError, match="cannot hold"):
        draw_marker(pixels, 320, 240, 1, 1)
    pixels = noise(5)
    with pytest.raises(ValueError, match="frame_number must fit in 32 bits"):
        draw_marker(pixels, WIDTH, HEIGHT, 2**32, 1)
    with pytest.raises(ValueError, match="capture_ms must fit in 32 bits"):
        draw_marker(pixels, WIDTH, HEIGHT, 1, -1)
    with pytest.raises(ValueError, match="uint8 array"):
        draw_marker(pixels.view(np.uint32), WIDTH, HEIGHT, 1, 1)
