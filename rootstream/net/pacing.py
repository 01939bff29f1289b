"""Pacing: spread a large frame's datagrams over a short interval.

An IDR is hundreds of datagrams.  Sent back to back they arrive at a switch
port or a Wi-Fi access point faster than its outgoing link drains, and a
shallow buffer drops the tail - exactly the frame the client asked for to
recover.  So the host sends a frame as a short burst followed by the rest at
a steady pace:

- the first ``burst_bytes``, or ``BURST_FRAMES`` average frames at the
  stream's bitrate if that is more, leave at once: ordinary frames (with
  their FEC parity, and the usual swing of a P-frame's size) are never
  delayed, since pacing them adds its spread to every frame's latency (the
  end-to-end benchmark measured 4 ms at 720p60 when every P-frame was
  paced); the first datagram of a frame never is;
- the rest leave at ``factor`` times the stream's bitrate, but fast enough
  that the whole frame is out within ``budget`` of the frame interval, so
  pacing never makes the sender fall behind the next frame.

:func:`pace_offsets` is the schedule with no clock and no socket;
:func:`slots` groups it into sends no closer than the sleep granularity;
:class:`PacedSender` is the few lines that sleep through it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

DEFAULT_FACTOR = 2.0  # pace at twice the stream's bitrate
DEFAULT_BUDGET = 0.5  # finish within half a frame interval
DEFAULT_BURST_BYTES = 8 * 1400  # sent at once whatever the bitrate
# Frames up to this many average frames leave at once; only keyframes and
# scene changes, several times larger, are paced.
BURST_FRAMES = 2
# Sleeping for less than this costs more in wake-up jitter than it spreads.
DEFAULT_GRANULARITY_NS = 1_000_000


@dataclass(frozen=True)
class PacingPlan:
    rate_bps: float  # the pace after the initial burst (0: no pacing)
    offsets_ns: list[int]  # when each datagram leaves, relative to the first


def pace_offsets(sizes: Sequence[int], *, bitrate_bps: float, frame_interval_ns: int,
                 factor: float = DEFAULT_FACTOR, budget: float = DEFAULT_BUDGET,
                 burst_bytes: int = DEFAULT_BURST_BYTES) -> PacingPlan:
    """Departure offsets for datagrams of ``sizes`` bytes, the first at 0."""
    total = sum(sizes)
    if total <= burst_bytes or bitrate_bps <= 0:
        return PacingPlan(0.0, [0] * len(sizes))
    window_ns = max(1, int(frame_interval_ns * budget))
    # Slow enough to be gentle, fast enough to finish within the window.
    rate = max(bitrate_bps * factor, (total - burst_bytes) * 8 * 1e9 / window_ns)
    offsets = []
    before = 0
    for size in sizes:
        paced = max(0, before - burst_bytes)
        offsets.append(int(paced * 8 * 1e9 / rate))
        before += size
    return PacingPlan(rate, offsets)


def slots(offsets_ns: Sequence[int],
          granularity_ns: int = DEFAULT_GRANULARITY_NS) -> list[tuple[int, int, int]]:
    """``(due_ns, start, end)`` groups: datagrams [start:end) leave at due_ns.

    A group takes every datagram due before ``due_ns + granularity_ns``, so
    the sender sleeps at most once per granule.
    """
    groups: list[tuple[int, int, int]] = []
    start = 0
    while start < len(offsets_ns):
        due = offsets_ns[start]
        end = start + 1
        while end < len(offsets_ns) and offsets_ns[end] < due + granularity_ns:
            end += 1
        groups.append((due, start, end))
        start = end
    return groups


class PacedSender:
    """Sends a frame's datagrams through ``send_batch`` on the pacing schedule.

    ``send_batch(payloads)`` sends a list of payloads back to back (the
    transport's ``send_many`` bound to an address and timestamp).  Runs on
    the caller's thread and returns when the last datagram has left.
    """

    def __init__(self, *, factor: float = DEFAULT_FACTOR, budget: float = DEFAULT_BUDGET,
                 burst_bytes: int = DEFAULT_BURST_BYTES,
                 granularity_ns: int = DEFAULT_GRANULARITY_NS,
                 clock: Callable[[], int] = time.monotonic_ns,
                 sleep: Callable[[float], None] = time.sleep):
        self.factor = factor
        self.budget = budget
        self.burst_bytes = burst_bytes
        self.granularity_ns = granularity_ns
        self._clock = clock
        self._sleep = sleep
        self.frames_paced = 0

    def send(self, payloads: Sequence[bytes], send_batch: Callable[[Sequence[bytes]], None], *,
             bitrate_bps: float, frame_interval_ns: int) -> None:
        average_frame = int(bitrate_bps / 8 * frame_interval_ns / 1e9)
        plan = pace_offsets([len(p) for p in payloads], bitrate_bps=bitrate_bps,
                            frame_interval_ns=frame_interval_ns, factor=self.factor,
                            budget=self.budget,
                            burst_bytes=max(self.burst_bytes, BURST_FRAMES * average_frame))
        if plan.rate_bps == 0:
            send_batch(payloads)
            return
        self.frames_paced += 1
        start = self._clock()
        for due, first, end in slots(plan.offsets_ns, self.granularity_ns):
            wait = start + due - self._clock()
            if wait > 0:
                self._sleep(wait / 1e9)
            send_batch(payloads[first:end])
