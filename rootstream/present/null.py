"""The null presenter: counts frames and keeps the last one, shows nothing.

For benchmarks (decode cost without a window) and headless clients.  Its
"window" is the stream itself, so ``window_to_stream`` is the identity.
"""

from __future__ import annotations

import time

import av
import numpy as np

from rootstream.present.base import Presenter, PresenterEvent


class NullPresenter(Presenter):
    name = "null"

    def __init__(self, *, width: int, height: int, title: str = "rootstream",
                 fullscreen: bool = False, vsync: bool = False):
        super().__init__(width=width, height=height)
        self.fullscreen = bool(fullscreen)
        self.last_frame: av.VideoFrame | None = None

    @classmethod
    def probe(cls) -> str:
        return ""

    def present(self, frame: av.VideoFrame) -> int:
        self.last_frame = frame
        self.width, self.height = frame.width, frame.height
        self.frames_presented += 1
        return time.monotonic_ns()

    def poll_events(self) -> list[PresenterEvent]:
        return []  # no window, so nothing ever happens to it

    def toggle_fullscreen(self) -> bool:
        self.fullscreen = not self.fullscreen
        return self.fullscreen

    def window_size(self) -> tuple[int, int]:
        return self.width, self.height

    def read_pixels(self) -> np.ndarray:
        if self.last_frame is None:
            return np.zeros((self.height, self.width, 4), np.uint8)
        pixels = self.last_frame.reformat(format="bgra").to_ndarray()
        pixels[:, :, 3] = 255
        return pixels

    def close(self) -> None:
        self.last_frame = None
