"""A frame number and a capture time written into the pixels, and read back.

The test pattern stamps every frame with this marker so any observer (the
client after decoding, a camera, a screenshot) can tell which frame it sees
and when the host captured it, without trusting any other channel.

Layout (top-left corner of the picture, 16x16-pixel cells, 21 x 5 cells =
336 x 80 pixels)::

    col:  0   1   2  ...  20
    row 0 W   B   W  ...  W      timing row: cells alternate white/black
    row 1 B   d0  d1 ...  d19    column 0 alternates too (W B W B W)
    row 2 W   d20 ...     d39
    row 3 B   d40 ...     d59
    row 4 W   d60 ...     d79

Data bits d0..d79, most significant first: the frame number (32 bits, big
endian), the capture time in milliseconds (32 bits, the low bits of the host's
monotonic clock), then CRC-16/CCITT-FALSE of those 8 bytes (16 bits).  A
white cell is 1, a black cell 0.

Why it survives an H.264 encode at a modest bitrate: each cell is a whole
16x16 macroblock of pure black or white, so quantisation blurs edges but never
moves a cell's centre across mid-grey, which is where the reader thresholds.
Why it survives mild scaling (0.5x to 2x): the reader measures the cell pitch
from the timing row and column before sampling cell centres.  Why a damaged
read yields None rather than a wrong number: the timing cells must look right
and the CRC must match.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

import numpy as np

CELL = 16
COLUMNS = 21
ROWS = 5
MARKER_WIDTH = CELL * COLUMNS  # 336
MARKER_HEIGHT = CELL * ROWS  # 80
DATA_BITS = (COLUMNS - 1) * (ROWS - 1)  # 80 = 32 + 32 + 16
MIN_SCALE, MAX_SCALE = 0.5, 2.0
THRESHOLD = 128  # mid-grey, right for full-range and limited-range (16..235) luma

_TIMING_ROW = np.arange(COLUMNS) % 2 == 0  # white on even columns
_TIMING_COLUMN = np.arange(ROWS) % 2 == 0
# The timing cells, with the data cells still to fill.
_GRID = np.zeros((ROWS, COLUMNS), dtype=bool)
_GRID[0, :] = _TIMING_ROW
_GRID[:, 0] = _TIMING_COLUMN
# A BGRX pixel as one native uint32: every byte 255 (white) or 0 (black).
_WHITE = np.uint32(0xFFFFFFFF)
# How far a measured timing edge may stray from where the pitch puts it.
_EDGE_TOLERANCE = 0.3


@dataclass(frozen=True, slots=True)
class Marker:
    frame_number: int
    capture_ms: int


def _payload(frame_number: int, capture_ms: int) -> bytes:
    body = frame_number.to_bytes(4, "big") + capture_ms.to_bytes(4, "big")
    return body + binascii.crc_hqx(body, 0xFFFF).to_bytes(2, "big")


def marker_cells(frame_number: int, capture_ms: int) -> np.ndarray:
    """The (ROWS, COLUMNS) bool grid of cells, True = white."""
    for value, what in ((frame_number, "frame_number"), (capture_ms, "capture_ms")):
        if not 0 <= value <= 0xFFFFFFFF:
            raise ValueError(f"{what} must fit in 32 bits, got {value}")
    bits = np.unpackbits(np.frombuffer(_payload(frame_number, capture_ms), np.uint8))
    grid = _GRID.copy()
    grid[1:, 1:] = bits.reshape(ROWS - 1, COLUMNS - 1)
    return grid


def draw_marker(pixels_bgrx: np.ndarray, width: int, height: int,
                frame_number: int, capture_ms: int) -> None:
    """Write the marker into the top-left corner of a (height, stride) BGRX array."""
    if width < MARKER_WIDTH or height < MARKER_HEIGHT:
        raise ValueError(f"a {width}x{height} picture cannot hold the "
                         f"{MARKER_WIDTH}x{MARKER_HEIGHT} marker")
    if pixels_bgrx.dtype != np.uint8 or pixels_bgrx.ndim != 2 or \
            pixels_bgrx.shape[0] < height or pixels_bgrx.shape[1] < width * 4:
        raise ValueError("pixels must be a (height, stride >= width*4) uint8 array")
    # Whole pixels as uint32 and every cell row in one assignment: the host
    # draws this each frame, where numpy's per-call cost is what counts.
    cell_rows = np.repeat(marker_cells(frame_number, capture_ms) * _WHITE, CELL, axis=1)
    corner = marker_area(pixels_bgrx).view(np.uint32).reshape(ROWS, CELL, MARKER_WIDTH)
    corner[...] = cell_rows[:, None, :]


def marker_area(pixels_bgrx: np.ndarray) -> np.ndarray:
    """The view of a (height, stride) BGRX array that the marker covers."""
    return pixels_bgrx[:MARKER_HEIGHT, :MARKER_WIDTH * 4]


def _edges(line: np.ndarray, count: int) -> np.ndarray | None:
    """Positions of the first ``count`` light/dark changes along a scan line."""
    light = line > THRESHOLD
    if not light[0]:
        return None  # the timing row and column start with a white cell
    changes = np.flatnonzero(light[1:] != light[:-1]) + 1
    if len(changes) < count:
        return None
    return changes[:count].astype(np.float64)


def _pitch(line: np.ndarray, cells: int) -> float | None:
    """Cell size along a timing line of ``cells`` alternating cells, or None."""
    edges = _edges(line, cells - 1)
    if edges is None:
        return None
    k = np.arange(1, cells, dtype=np.float64)
    pitch = float(edges @ k / (k @ k))  # least-squares fit of edge k at k * pitch
    if not CELL * MIN_SCALE <= pitch <= CELL * MAX_SCALE:
        return None
    if np.max(np.abs(edges - k * pitch)) > _EDGE_TOLERANCE * pitch:
        return None
    return pitch


def _read(plane: np.ndarray) -> Marker | None:
    """Decode the marker from a 2-D uint8 brightness array (top-left corner)."""
    if plane.shape[0] < MARKER_HEIGHT * MIN_SCALE or plane.shape[1] < MARKER_WIDTH * MIN_SCALE:
        return None
    scan = int(CELL * MIN_SCALE / 2)  # inside the first cell row/column at any allowed scale
    pitch_x = _pitch(plane[scan], COLUMNS)
    pitch_y = _pitch(plane[:, scan], ROWS)
    if pitch_x is None or pitch_y is None:
        return None
    # Sample a 3x3 patch around each cell centre, half a cell wide.
    spread = np.array([-0.25, 0.0, 0.25])
    ys = ((np.arange(ROWS)[:, None] + 0.5 + spread) * pitch_y).astype(np.intp).ravel()
    xs = ((np.arange(COLUMNS)[:, None] + 0.5 + spread) * pitch_x).astype(np.intp).ravel()
    if ys[-1] >= plane.shape[0] or xs[-1] >= plane.shape[1]:
        return None
    patches = plane[np.ix_(ys, xs)].reshape(ROWS, 3, COLUMNS, 3)
    light = patches.mean(axis=(1, 3)) > THRESHOLD
    if not (np.array_equal(light[0], _TIMING_ROW) and np.array_equal(light[:, 0], _TIMING_COLUMN)):
        return None
    data = np.packbits(light[1:, 1:].ravel()).tobytes()
    body, check = data[:8], int.from_bytes(data[8:], "big")
    if binascii.crc_hqx(body, 0xFFFF) != check:
        return None
    return Marker(int.from_bytes(body[:4], "big"), int.from_bytes(body[4:], "big"))


def _region(width: int, height: int) -> tuple[int, int]:
    """How much of the corner a read may need: the marker at the largest scale."""
    return min(height, int(MARKER_HEIGHT * MAX_SCALE)), min(width, int(MARKER_WIDTH * MAX_SCALE))


def read_marker_y(y_plane: np.ndarray, width: int, height: int) -> Marker | None:
    """Read the marker from a decoded picture's luma plane, (height, width or stride)."""
    rows, columns = _region(width, height)
    return _read(y_plane[:rows, :columns])


def read_marker_bgrx(pixels_bgrx: np.ndarray, width: int, height: int) -> Marker | None:
    """Read the marker from a (height, stride) BGRX screenshot."""
    rows, columns = _region(width, height)
    corner = pixels_bgrx[:rows, : columns * 4].reshape(rows, columns, 4).astype(np.uint16)
    # Integer BT.601 luma weights (sum 256): close enough to threshold black and white.
    luma = (corner[..., 0] * 29 + corner[..., 1] * 150 + corner[..., 2] * 77) >> 8
    return _read(luma.astype(np.uint8))
