"""What the client measures about the path for the host's bitrate controller.

A plain synchronous object, time passed in.  The receive thread calls
:meth:`PathMonitor.frame` for each video frame it rebuilds and
:meth:`PathMonitor.sample` once per stats report.

One-way delay: each VIDEO datagram's ROOT timestamp is the frame's capture
time on the host's clock (ms) and the fragment sub-header carries the host's
processing time, so ``arrival - (capture + host processing)`` is the path's
one-way delay plus an unknown, constant offset between the two clocks.  Only
differences are ever used - delay above its recent floor, change since the
last report - so the offset cancels and the clocks need no synchronising.
The first datagram of a frame is used: pacing never delays it, so the figure
is the path's queue, not our own spreading.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

_MS = 1_000_000
_WRAP = 1 << 32
FLOOR_WINDOW_S = 10.0  # the floor forgets older minima: a route change moves it


@dataclass(frozen=True)
class PathSample:
    """One stats interval's figures, in the units StatsReport carries."""

    receive_kbps: int
    queue_delay_us: int  # median one-way delay above the recent floor
    delay_trend_us: int  # change of the median since the previous interval


class PathMonitor:
    def __init__(self, floor_window_s: float = FLOOR_WINDOW_S):
        self._floor_window_ns = int(floor_window_s * 1e9)
        self._reference_ms: int | None = None  # first raw delay; keeps numbers small
        self._interval: list[float] = []  # relative one-way delays this interval, ms
        self._minima: deque[tuple[int, float]] = deque()  # (interval end ns, min)
        self._previous_median: float | None = None
        self._last_ns: int | None = None
        self._last_bytes = 0

    def frame(self, capture_ms: int, host_us: int, arrival_ns: int) -> None:
        """A frame whose first datagram arrived at ``arrival_ns`` (our clock)."""
        raw = (arrival_ns // _MS - capture_ms) % _WRAP
        if self._reference_ms is None:
            self._reference_ms = raw
        relative = (raw - self._reference_ms) % _WRAP
        if relative >= _WRAP // 2:
            relative -= _WRAP
        self._interval.append(relative - host_us / 1000)

    def sample(self, now_ns: int, received_bytes: int) -> PathSample:
        """Close the interval: receive rate since the last sample and delay figures."""
        kbps = 0
        if self._last_ns is not None and now_ns > self._last_ns:
            kbps = int((received_bytes - self._last_bytes) * 8 * 1e6 / (now_ns - self._last_ns))
        self._last_ns, self._last_bytes = now_ns, received_bytes
        if not self._interval:
            return PathSample(max(0, kbps), 0, 0)
        median = statistics.median(self._interval)
        self._minima.append((now_ns, min(self._interval)))
        self._interval = []
        while self._minima and now_ns - self._minima[0][0] > self._floor_window_ns:
            self._minima.popleft()
        floor = min(m for _, m in self._minima)
        trend = 0.0 if self._previous_median is None else median - self._previous_median
        self._previous_median = median
        return PathSample(max(0, kbps), int(max(0.0, median - floor) * 1000), int(trend * 1000))
