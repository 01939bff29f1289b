"""The presenter interface shared by every backend, and the letterbox geometry.

A presenter shows decoded pictures (NV12 or yuv420p ``av.VideoFrame``) and is
the client's source of window events.  Geometry lives here, in one function,
so drawing and mouse mapping can never disagree about where the picture is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import av
import numpy as np

EventListener = Callable[[Any], None]


class Rect(NamedTuple):
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True, slots=True)
class PresenterEvent:
    """What the client loop acts on; raw events go to listeners instead.

    kind: "quit" (window closed or the user quit), "resized" (width, height:
    the window's new size), "key" (key: SDL key name such as "F11" or "Q",
    pressed, repeat, modifiers: SDL KMOD_* bits, scancode).
    """

    kind: str
    width: int = 0
    height: int = 0
    key: str = ""
    pressed: bool = False
    repeat: bool = False
    modifiers: int = 0
    scancode: int = 0


def letterbox(stream_w: int, stream_h: int, out_w: int, out_h: int) -> Rect:
    """The largest rectangle of the stream's aspect that fits the output, centred.

    Bars go on the sides (pillarbox) or top and bottom (letterbox); the picture
    is never cropped or stretched.
    """
    if min(stream_w, stream_h, out_w, out_h) <= 0:
        return Rect(0, 0, 0, 0)
    if out_w * stream_h > out_h * stream_w:  # output is wider: bars left and right
        h = out_h
        w = max(1, (stream_w * out_h + stream_h // 2) // stream_h)
    else:
        w = out_w
        h = max(1, (stream_h * out_w + stream_w // 2) // stream_w)
    return Rect((out_w - w) // 2, (out_h - h) // 2, w, h)


def map_to_stream(x: float, y: float, stream_w: int, stream_h: int,
                  out_w: int, out_h: int) -> tuple[int, int] | None:
    """Window coordinates to stream pixels through the letterbox; None on a bar."""
    box = letterbox(stream_w, stream_h, out_w, out_h)
    if not (box.x <= x < box.x + box.w and box.y <= y < box.y + box.h):
        return None
    # Map pixel centres, so the first and last window pixel of the picture
    # land on the first and last stream pixel whatever the scale.
    sx = int((x - box.x + 0.5) * stream_w / box.w)
    sy = int((y - box.y + 0.5) * stream_h / box.h)
    return min(sx, stream_w - 1), min(sy, stream_h - 1)


class Presenter(ABC):
    """Shows frames in a window or on a display; one thread owns it.

    ``width``/``height`` are the stream's size (updated when a frame of a new
    size arrives); ``frames_presented`` counts frames shown.
    """

    name: str = ""

    def __init__(self, *, width: int, height: int):
        self.width, self.height = int(width), int(height)
        self.frames_presented = 0
        self.fallbacks: list = []  # BackendProbe of presenters auto tried first
        self.chosen_because = ""  # why ``auto`` chose this one ("" when named)
        self._listeners: list[EventListener] = []

    @abstractmethod
    def present(self, frame: av.VideoFrame) -> int:
        """Show ``frame``; returns time.monotonic_ns() once it was handed to the display."""

    @abstractmethod
    def poll_events(self) -> list[PresenterEvent]:
        """Drain pending window events; every raw event also goes to each listener."""

    @abstractmethod
    def toggle_fullscreen(self) -> bool:
        """Switch between windowed and fullscreen; returns True if now fullscreen."""

    @abstractmethod
    def window_size(self) -> tuple[int, int]:
        """The drawable area's size in the coordinates mouse events use."""

    @abstractmethod
    def read_pixels(self) -> np.ndarray:
        """What the output shows, as a (height, width, 4) uint8 BGRX array."""

    @abstractmethod
    def close(self) -> None:
        """Release the window/display; safe to call twice."""

    def add_event_listener(self, callback: EventListener) -> None:
        """``callback(raw_event)`` is called for every event ``poll_events`` reads.

        The raw event (an SDL_Event for ``sdl``) is only valid during the call:
        copy what you need.  Exceptions from a listener propagate.
        """
        self._listeners.append(callback)

    def remove_event_listener(self, callback: EventListener) -> None:
        self._listeners.remove(callback)

    def window_to_stream(self, x: float, y: float) -> tuple[int, int] | None:
        """Map a window position (e.g. a mouse event's) to stream pixel
        coordinates, or None when it falls on a letterbox bar."""
        out_w, out_h = self.window_size()
        return map_to_stream(x, y, self.width, self.height, out_w, out_h)

    def __enter__(self) -> Presenter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
