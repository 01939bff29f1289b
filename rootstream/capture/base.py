"""The interface every capture backend implements.

A backend owns one pixel buffer and reuses it: ``grab()`` fills it and returns
a :class:`~rootstream.frame.CapturedFrame` that views it, valid until the next
``grab()``.  Nothing is allocated per frame on the normal path, so the capture
thread never waits on the allocator and never feeds the garbage collector.

``grab(timeout)`` returns None when nothing new arrived before the timeout:
change-driven backends (X11 with XDAMAGE) only return when the screen changed,
paced backends (the test pattern) when the next tick came.  The caller decides
what "nothing new" means for it (resend, keep-alive, or just wait again).
A backend is used by one thread: to stop a capture thread, give ``grab`` a
timeout and check a flag between calls, then ``close()`` from that thread.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

import numpy as np

from ..frame import CapturedFrame, HostStamps


class CaptureBackend(ABC):
    """A source of BGRX-style frames.  Use as a context manager, or call close()."""

    name: str = ""
    width: int = 0
    height: int = 0
    pixel_format: str = "BGRX"

    def __init__(self) -> None:
        # What the backend gave up on and why ("MIT-SHM unavailable: ..."),
        # for `rootstream doctor` and the host's start-up line.
        self.fallbacks: list[str] = []
        self._sequence = 0

    @abstractmethod
    def grab(self, timeout: float | None = None, *, force: bool = False) -> CapturedFrame | None:
        """The next frame, or None if nothing new came within ``timeout`` seconds.

        ``timeout=None`` waits as long as it takes; ``0`` only looks.
        ``force=True`` returns the current picture even if nothing changed:
        a new client, or a keyframe request, needs a picture of a still screen.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the buffer, devices and connections.  Safe to call twice."""

    def describe(self) -> str:
        """One line for diagnostics: size, format and any fallback taken."""
        text = f"{self.width}x{self.height} {self.pixel_format}"
        if self.fallbacks:
            text += "; " + "; ".join(self.fallbacks)
        return text

    def _frame(self, pixels: np.ndarray, captured_ns: int) -> CapturedFrame:
        """Wrap the backend's buffer as the next frame, numbered from 0."""
        frame = CapturedFrame(
            pixels=pixels,
            width=self.width,
            height=self.height,
            stride=pixels.shape[1],
            pixel_format=self.pixel_format,
            sequence=self._sequence,
            stamps=HostStamps(captured=captured_ns),
        )
        self._sequence += 1
        return frame

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.describe()}>"


class Pacer:
    """At most ``fps`` frames a second, on a steady cadence, never a catch-up burst.

    Slots fall every period.  A caller that comes back late gets one frame at
    once, then the cadence resumes; a caller more than a period late restarts
    the cadence from that frame instead of being handed the missed slots.
    """

    def __init__(self, fps: float):
        self.period_ns = round(1e9 / fps)
        self._next_ns: int | None = None  # None: the first frame is due at once

    def wait(self, deadline_ns: int | None) -> int | None:
        """Sleep until the next slot and return it, or None if ``deadline_ns`` comes first."""
        if self._next_ns is None:
            return time.monotonic_ns()
        slot = self._next_ns
        if deadline_ns is not None and slot > deadline_ns:
            wait_until(deadline_ns)
            return None
        wait_until(slot)
        return slot

    def taken(self, slot_ns: int, captured_ns: int) -> None:
        """Record that the frame for ``slot_ns`` was captured at ``captured_ns``."""
        self._next_ns = slot_ns + self.period_ns
        if self._next_ns <= captured_ns:
            self._next_ns = captured_ns + self.period_ns


def deadline_after(timeout: float | None) -> int | None:
    """The monotonic deadline for a ``grab(timeout)`` call; None waits forever."""
    return None if timeout is None else time.monotonic_ns() + int(max(timeout, 0.0) * 1e9)


def wait_until(deadline_ns: int) -> None:
    """Sleep until monotonic time ``deadline_ns`` (returns at once if past)."""
    remaining = deadline_ns - time.monotonic_ns()
    if remaining > 0:
        time.sleep(remaining / 1e9)
