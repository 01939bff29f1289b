"""A moving test pattern, paced to a frame rate, stamped with the marker.

The picture scrolls diagonally by a few pixels every frame, so every
macroblock changes and an encoder has real work, yet the motion is one global
translation that motion search finds: it compresses like a game panning, not
like noise.  The top-left corner carries the frame number and capture time
(see :mod:`rootstream.marker`), so latency can be read off any copy
of the picture downstream.

Rendering copies nothing: the frame is a window into a precomputed texture
(the tile repeated one period wider and taller than the picture), handed out
with the texture's row pitch as its stride, the way a KMS framebuffer is
mapped.  Only the marker is written, into the texture under the window, and
the pixels it covered are put back before the next frame.  A copy of the
whole picture cost 0.5-1 ms per frame at 1080p, all of it counted as host
processing (``bench/bench_capture.py``).
"""

from __future__ import annotations

import time

import numpy as np

from rootstream.marker import MARKER_HEIGHT, MARKER_WIDTH, draw_marker, marker_area

from ..errors import CaptureError
from ..frame import CapturedFrame
from .base import CaptureBackend, Pacer, deadline_after

PERIOD = 256  # the tile repeats every PERIOD pixels in x and y
STEP_X, STEP_Y = 3, 2  # scroll per frame, in pixels
SQUARE = 32  # checkerboard square size: edges for the encoder to track
MAX_SIZE = (7680, 4320)


def make_tile() -> np.ndarray:
    """One PERIOD x PERIOD BGRX tile: smooth colour waves under a soft checkerboard."""
    y, x = np.mgrid[0:PERIOD, 0:PERIOD].astype(np.float32) * (2 * np.pi / PERIOD)
    blue = np.sin(x + y)
    green = np.sin(y)
    red = np.sin(x)
    shade = np.where(((np.arange(PERIOD)[:, None] // SQUARE + np.arange(PERIOD) // SQUARE) % 2)
                     == 0, 1.0, 0.7).astype(np.float32)
    tile = np.empty((PERIOD, PERIOD, 4), dtype=np.uint8)
    for channel, wave in enumerate((blue, green, red)):
        tile[..., channel] = ((128 + 96 * wave) * shade).astype(np.uint8)
    tile[..., 3] = 255
    return tile


class PatternCapture(CaptureBackend):
    """Frames of a scrolling pattern at ``fps``, ``width`` x ``height`` BGRX."""

    name = "test"

    def __init__(self, width: int = 1280, height: int = 720, fps: float = 60):
        super().__init__()
        if not (MARKER_WIDTH <= width <= MAX_SIZE[0] and MARKER_HEIGHT <= height <= MAX_SIZE[1]):
            raise CaptureError(
                "test pattern size is out of range",
                hint=f"choose between {MARKER_WIDTH}x{MARKER_HEIGHT} and "
                     f"{MAX_SIZE[0]}x{MAX_SIZE[1]}",
                details=[f"asked for {width}x{height}"],
            )
        if width % 2 or height % 2:
            raise CaptureError("test pattern width and height must be even",
                               hint="4:2:0 video halves both; try e.g. 1280x720",
                               details=[f"asked for {width}x{height}"])
        if not 0 < fps <= 1000:
            raise CaptureError("test pattern frame rate must be between 0 and 1000",
                               details=[f"asked for {fps}"])
        self.width, self.height = int(width), int(height)
        self._pacer = Pacer(fps)
        reps_y = -(-(self.height + PERIOD) // PERIOD)
        reps_x = -(-(self.width + PERIOD) // PERIOD)
        texture = np.tile(make_tile(), (reps_y, reps_x, 1))
        self._pitch = texture.shape[1] * 4  # bytes per texture row: every frame's stride
        self._texture = texture.reshape(-1)
        # The texture's pixels under the last marker, and where they go back.
        self._under_marker: tuple[np.ndarray, np.ndarray] | None = None

    def grab(self, timeout: float | None = None, *, force: bool = False) -> CapturedFrame | None:
        slot = self._pacer.wait(deadline_after(timeout))
        if slot is None:
            return None
        captured = time.monotonic_ns()
        pixels = self.render(self._sequence, captured)
        self._pacer.taken(slot, captured)
        return self._frame(pixels, captured)

    def render(self, frame_number: int, captured_ns: int) -> np.ndarray:
        """Frame ``frame_number`` as a (height, pitch) window into the texture,
        marker drawn, without pacing.  Valid until the next call."""
        self._erase_marker()
        ox = (frame_number * STEP_X) % PERIOD
        oy = (frame_number * STEP_Y) % PERIOD
        start = oy * self._pitch + ox * 4
        # The window's last row runs past the picture into the next texture
        # row; that tail is stride padding, never read as picture.  The
        # texture is a period taller than the picture, so the window fits.
        pixels = self._texture[start:start + self.height * self._pitch].reshape(
            self.height, self._pitch)
        under = marker_area(pixels)
        self._under_marker = (under, under.copy())
        draw_marker(pixels, self.width, self.height, frame_number & 0xFFFFFFFF,
                    (captured_ns // 1_000_000) & 0xFFFFFFFF)
        return pixels

    def _erase_marker(self) -> None:
        if self._under_marker is not None:
            where, saved = self._under_marker
            where[...] = saved
            self._under_marker = None

    def describe(self) -> str:
        return f"{super().describe()}, {1e9 / self._pacer.period_ns:g} fps scrolling pattern"

    def close(self) -> None:
        # Nothing external to release; the buffers go with the object.
        pass
