"""One picture, many paths: how the host treats viewers whose paths differ.

The encoder has one rate and the frame one parity share, for every viewer.
The policy (README, "Share with a room"):

1. **The rate follows the first viewer** (the one whose wishes set the stream
   and whose input is injected): rootstream.host.adaptive reads its reports
   alone, and its sent-byte count alone.  A later viewer's reports never
   lower the rate, so a bad path cannot cost everyone the picture.
2. **A lossy later viewer gets more parity, within a bound.**  The shared
   parity share is the larger of what the first viewer's loss calls for and
   what the worst later viewer's does, but the later viewers can raise it
   only to ``SHARED_FEC_CEILING``: every viewer's link carries the parity,
   so that is the most one viewer may cost the others.
3. **Then a message and the lowest priority.**  A later viewer that still
   loses more than the parity repairs for ``LAGGING_REPORTS`` reports in a
   row is named once in the host's log with its loss, and its sender thread
   holds one frame instead of a few (it drops rather than queues: it never
   holds frames back for its own sake).  It recovers by itself from every
   loss (a refresh cycle, or keyframe requests, which coalesce).

Everything here runs on the host's control thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from rootstream.net.bitrate import FecPolicy, counter_delta
from rootstream.protocol import StatsReport

SHARED_FEC_CEILING = 0.35  # the most parity later viewers may put on everyone's link
LAGGING_LOSS = 0.05  # datagram loss beyond what the parity share can repair, roughly
LAGGING_REPORTS = 3  # reports in a row (about 3 s) before a viewer is called lagging


@dataclass
class _PathState:
    fec: FecPolicy
    previous: StatsReport | None = None
    bad_reports: int = 0
    lagging: bool = False
    loss: float = 0.0


@dataclass
class RoomPolicy:
    """Follows the later viewers' reports; says what the shared parity should be."""

    fec_base: float
    apply_fec: Callable[[float], None]
    log: Callable[[str], None] = print
    first_share: float = 0.0  # what the first viewer's loss asks for (AdaptiveBitrate)
    _paths: dict[int, _PathState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.first_share = self.fec_base

    def first_fec(self, share: float) -> None:
        """The first viewer's share changed (AdaptiveBitrate's apply_fec)."""
        self.first_share = share
        self._apply()

    def report(self, viewer, message: StatsReport) -> None:
        """A later viewer's StatsReport (``viewer``: rootstream.host.viewers.Viewer)."""
        key = id(viewer)
        state = self._paths.get(key)
        if state is None:
            state = self._paths[key] = _PathState(FecPolicy(
                self.fec_base, maximum=max(self.fec_base, SHARED_FEC_CEILING)))
        previous, state.previous = state.previous or StatsReport(), message
        received = counter_delta(message.datagrams_received, previous.datagrams_received)
        lost = counter_delta(message.datagrams_lost, previous.datagrams_lost)
        state.loss = lost / (received + lost) if received + lost else 0.0
        if state.fec.update(state.loss) is not None:
            self._apply()
        state.bad_reports = state.bad_reports + 1 if state.loss > LAGGING_LOSS else 0
        if state.bad_reports >= LAGGING_REPORTS and not state.lagging:
            state.lagging = True
            if viewer.outlet is not None:
                viewer.outlet.lower_priority()
            address = f"{viewer.address[0]}:{viewer.address[1]}"
            self.log(f"viewer {address} loses {state.loss:.0%} of its datagrams, more than "
                     f"the parity repairs: its picture will stall; the stream's rate follows "
                     f"the first viewer, so the others are not slowed down for it")
            viewer.count("lagging")

    def forget(self, viewer) -> None:
        """A viewer left (or became the first, whose path AdaptiveBitrate follows)."""
        if self._paths.pop(id(viewer), None) is not None:
            self._apply()

    def others_share(self) -> float:
        return max((s.fec.share for s in self._paths.values()), default=self.fec_base)

    def _apply(self) -> None:
        if self.fec_base <= 0:
            return  # FEC off by the user's choice: nobody gets parity
        self.apply_fec(max(self.first_share, min(SHARED_FEC_CEILING, self.others_share())))
