"""Copying only what changed: the producer's damage regions, kept per picture.

A screencast buffer always holds the whole picture, and its damage metadata
says which rectangles differ from the picture before it (xdg-desktop-portal-wlr
passes on the compositor's screencopy damage).  Our frame arrays (FrameSlots)
each hold some older picture; to bring one up to date we copy the union of the
damage of every picture since the one it holds, out of the newest buffer.  On a
desktop (a cursor blink, a typed letter) that is a few kilobytes instead of the
whole frame; a game that changes every pixel gets one full copy as before.

Anything we cannot account for forces a full copy: a gap in the header's seq
(a buffer we never saw), a picture without damage metadata or with an empty
list, a buffer we skipped as corrupted, an array older than the log.
"""

from __future__ import annotations

from collections import deque

import numpy as np

Rect = tuple[int, int, int, int]  # x, y, w, h

# Pictures remembered; an array that fell further behind is copied in full.
KEEP = 16
# Beyond this many rectangles, or this share of the frame, one full copy is cheaper
# than many small numpy slice assignments.
MAX_RECTS = 32
MAX_AREA_SHARE = 0.5


class DamageLog:
    """Numbers the pictures of one stream and remembers what each one changed."""

    def __init__(self, keep: int = KEEP):
        self.version = 0  # of the newest picture; 0: none yet
        self._changes: deque[tuple[int, list[Rect] | None]] = deque(maxlen=keep)
        self._last_seq: int | None = None
        self._unknown = True  # something may have changed that no damage describes

    def saw_buffer(self, seq: int | None) -> None:
        """Every dequeued buffer, in order, picture or not: checks seq continuity."""
        if seq is None or self._last_seq is None or seq != self._last_seq + 1:
            self._unknown = True
        self._last_seq = seq

    def lost_picture(self) -> None:
        """A buffer whose picture we passed over (corrupted): its change is unknown."""
        self._unknown = True

    def add_picture(self, damage: list[Rect] | None) -> int:
        """A new picture with its damage (None: unknown); returns its version."""
        self.version += 1
        known = None if self._unknown or not damage else list(damage)
        self._changes.append((self.version, known))
        self._unknown = False
        return self.version

    def changed_since(self, version: int | None) -> list[Rect] | None:
        """The rectangles that changed from picture ``version`` to the newest, or
        None when only a full copy is safe."""
        if version is None or version <= 0:
            return None
        behind = self.version - version
        if behind < 0 or behind > len(self._changes):
            return None
        rects: list[Rect] = []
        for number, changes in list(self._changes)[len(self._changes) - behind:]:
            if number <= version:
                return None  # cannot happen while versions are contiguous; be safe
            if changes is None:
                return None
            rects.extend(changes)
        return rects


Box = tuple[int, int, int, int]  # x0, y0, x1, y1


def clip_rects(rects: list[Rect], width: int, height: int) -> list[Box] | None:
    """(x0, y0, x1, y1) inside the frame, or None when a full copy is cheaper.

    The rectangles come from another process: clip them to the frame."""
    if len(rects) > MAX_RECTS:
        return None
    boxes, area = [], 0
    for x, y, w, h in rects:
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(width, x + w), min(height, y + h)
        if x1 > x0 and y1 > y0:
            boxes.append((x0, y0, x1, y1))
            area += (x1 - x0) * (y1 - y0)
    if area > MAX_AREA_SHARE * width * height:
        return None
    return boxes


def copy_boxes(source: np.ndarray, dest: np.ndarray, stride: int, height: int,
               row_bytes: int, boxes: list[Box]) -> None:
    """Copy the pixel boxes of a flat ``source`` plane (rows ``stride`` apart) into
    ``dest`` ((height, stride) uint8)."""
    if len(source) >= stride * height:  # the usual case: a plain reshape is cheaper
        rows = source[:stride * height].reshape(height, stride)
    else:  # the last row stops at the picture's edge
        rows = np.lib.stride_tricks.as_strided(source, (height, row_bytes), (stride, 1),
                                               writeable=False)
    for x0, y0, x1, y1 in boxes:
        dest[y0:y1, x0 * 4:x1 * 4] = rows[y0:y1, x0 * 4:x1 * 4]
