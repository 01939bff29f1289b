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
from collections.abc import Callable

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


class ChangeRateCap:
    """About ``fps`` grabs a second at most, for capture driven by changes.

    A change is grabbed at once unless that would pass the rate; then it waits
    only as long as the rate demands.  The budget is a bucket of credit that
    fills at ``fps`` plus RATE_SLACK and holds at most BURST frames.

    Why not Pacer's grid of slots, and why the slack: a source that changes at
    exactly the cap's rate (a 60 Hz game under a 60 fps cap) sits on the cap's
    edge.  Once anything makes one of its changes wait - jitter with a grid,
    or with a bucket an extra grab such as the first one or a keyframe
    request - each later change arrives to find the budget just short by the
    same amount and waits the same time: a lag of up to a period or more that
    never goes away.  Measured on Xvfb, capture waited 8 ms a frame in one run
    and nothing in the next.  A bucket that fills slightly faster than the
    source drains it wins back RATE_SLACK of a period each frame, so any such
    lag is gone within a few dozen frames.

    Why BURST 2: with credit for one extra frame, a change between two frames
    of a moving screen is grabbed at once rather than at the next slot (half a
    frame, 8 ms at 60 fps, on average); RATE_SLACK repays it within 10 frames.

    ``clock`` and ``sleep_until`` are the monotonic clock in ns and a sleep to
    a time on it (tests pass a fake pair).
    """

    # Frames of credit kept: a still screen's first change goes at once, and so
    # does a change that lands between two frames of motion (a click's answer
    # while a video plays) instead of waiting for the next slot; measured
    # (bench_glass, 720p60, 2 rounds): "change in motion" p50 15.3 -> 10.7 ms,
    # desktop 9.9 -> 7.9, game 8.6 -> 7.8, host CPU +0.03 s/s.  1.5 frames
    # alone gave 14.0 in motion: the extra grab must also be repaid quickly.
    BURST = 2.0
    # So a fast source is grabbed at up to 66 fps under a 60 fps cap, and an
    # extra grab is repaid within 10 frames.
    RATE_SLACK = 0.10

    def __init__(self, fps: float, *, clock: Callable[[], int] = time.monotonic_ns,
                 sleep_until: Callable[[int], None] | None = None):
        self.period_ns = round(1e9 / (fps * (1 + self.RATE_SLACK)))
        self._clock = clock
        self._sleep_until = sleep_until or wait_until
        self._credit = self.BURST  # in frames, as of _as_of_ns
        self._as_of_ns: int | None = None

    def _credit_at(self, t_ns: int) -> float:
        if self._as_of_ns is None:
            return self.BURST
        return min(self.BURST, self._credit + (t_ns - self._as_of_ns) / self.period_ns)

    def wait(self, deadline_ns: int | None) -> int | None:
        """Sleep until a grab is within the rate and return that time, or None
        if ``deadline_ns`` comes first."""
        now = self._clock()
        credit = self._credit_at(now)
        if credit >= 1:
            return now
        slot = now + round((1 - credit) * self.period_ns)
        if deadline_ns is not None and slot > deadline_ns:
            self._sleep_until(deadline_ns)
            return None
        self._sleep_until(slot)
        return slot

    def taken(self, slot_ns: int, captured_ns: int) -> None:
        """Spend one frame of credit for the grab ``wait`` allowed at ``slot_ns``."""
        self._credit = self._credit_at(slot_ns) - 1
        self._as_of_ns = slot_ns


def deadline_after(timeout: float | None) -> int | None:
    """The monotonic deadline for a ``grab(timeout)`` call; None waits forever."""
    return None if timeout is None else time.monotonic_ns() + int(max(timeout, 0.0) * 1e9)


def wait_until(deadline_ns: int) -> None:
    """Sleep until monotonic time ``deadline_ns`` (returns at once if past)."""
    remaining = deadline_ns - time.monotonic_ns()
    if remaining > 0:
        time.sleep(remaining / 1e9)
