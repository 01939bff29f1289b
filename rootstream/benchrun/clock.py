"""The offset between the host's clock and ours, from ping/pong exchanges.

One exchange: we send a ping at t0 (our clock), the host stamps its arrival
t1 and the pong's departure t2 (its clock), the pong arrives at t3 (ours).
With offset = host clock - our clock, and d1, d2 >= 0 the one-way delays,

    t1 = t0 + d1 + offset,    t3 = t2 + d2 - offset,

so the round trip is rtt = (t3 - t0) - (t2 - t1) = d1 + d2, and the NTP
estimate ((t1 - t0) + (t2 - t3)) / 2 = offset + (d1 - d2) / 2 differs from the
truth by at most rtt / 2, whatever the asymmetry.  Each exchange therefore
pins the offset to an interval of width rtt around its estimate; the
exchanges with the smallest round trips give the narrowest intervals.

The estimator intersects the intervals of the ``best`` smallest-RTT
exchanges: the true offset lies in every one of them, so it lies in their
intersection, and the error bound reported is half the intersection's width
(never more than half the smallest RTT).  Should they not intersect (the
clocks drifted apart during the measurement, or a stamp was wrong), it falls
back to the single smallest-RTT exchange and its own bound.  Clocks drift
(tens of ppm between two machines), which is why the bench estimates the
offset afresh for every phase rather than once per run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_BEST = 5


@dataclass(frozen=True, slots=True)
class Exchange:
    t0: int  # ping sent (our clock, ns)
    t1: int  # ping arrived (host's clock)
    t2: int  # pong sent (host's clock)
    t3: int  # pong arrived (our clock)

    @property
    def rtt_ns(self) -> int:
        return (self.t3 - self.t0) - (self.t2 - self.t1)

    @property
    def offset_ns(self) -> float:
        return ((self.t1 - self.t0) + (self.t2 - self.t3)) / 2


@dataclass(frozen=True, slots=True)
class OffsetEstimate:
    offset_ns: float  # host clock - our clock
    error_ns: float  # the true offset is within offset_ns +- error_ns
    min_rtt_ns: int
    exchanges: int  # how many exchanges were kept
    used: int  # how many of the smallest-RTT ones the estimate rests on

    def to_host_ns(self, ours_ns: float) -> float:
        return ours_ns + self.offset_ns

    def to_ours_ns(self, host_ns: float) -> float:
        return host_ns - self.offset_ns


class OffsetEstimator:
    """Collects exchanges; ``estimate()`` at any time.  No clock of its own."""

    def __init__(self, best: int = DEFAULT_BEST):
        if best < 1:
            raise ValueError("best must be at least 1")
        self.best = best
        self.exchanges: list[Exchange] = []
        self.rejected = 0  # impossible stamps: negative round trip or host time running back

    def add(self, t0: int, t1: int, t2: int, t3: int) -> Exchange | None:
        exchange = Exchange(t0, t1, t2, t3)
        if t3 < t0 or t2 < t1 or exchange.rtt_ns < 0:
            self.rejected += 1
            return None
        self.exchanges.append(exchange)
        return exchange

    def rtts_ns(self) -> np.ndarray:
        return np.array([e.rtt_ns for e in self.exchanges], dtype=np.int64)

    def estimate(self) -> OffsetEstimate | None:
        if not self.exchanges:
            return None
        ranked = sorted(self.exchanges, key=lambda e: e.rtt_ns)
        chosen = ranked[:self.best]
        low = max(e.offset_ns - e.rtt_ns / 2 for e in chosen)
        high = min(e.offset_ns + e.rtt_ns / 2 for e in chosen)
        if low > high:
            chosen = ranked[:1]
            low = chosen[0].offset_ns - chosen[0].rtt_ns / 2
            high = chosen[0].offset_ns + chosen[0].rtt_ns / 2
        return OffsetEstimate(offset_ns=(low + high) / 2, error_ns=(high - low) / 2,
                              min_rtt_ns=ranked[0].rtt_ns, exchanges=len(self.exchanges),
                              used=len(chosen))
