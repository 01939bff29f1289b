"""Reassembly that asks for lost fragments and waits for them (docs/PROTOCOL.md §4, "Repair").

:class:`RepairingReassembler` is the :class:`~rootstream.protocol.reassembly.Reassembler`
of a session where both peers announced ``Capability.REPAIR``.  Where the
plain one gives a short frame up as soon as a later one completes (latest
frame wins; the client then waits for a keyframe), this one:

1. notices a short frame early: its last fragment arrived and it is still
   incomplete, a fragment of a later frame arrives while it is incomplete
   (the host sends a frame's data and parity before the next frame's), a
   frame id was skipped altogether, or it has waited ``detect_ms`` since its
   first fragment;
2. says which data fragments to ask for (:meth:`repairs_due`, called by the
   receive loop right after each datagram, so a request leaves at once), and
   again after twice the measured round trip, ``max_tries`` times at most;
3. holds every later complete frame meanwhile, so frames leave in order and
   never past a missing reference; a keyframe ends the wait (it needs
   nothing older);
4. gives the wait up (:meth:`expire`) after the last try, after ``hold_ms``
   or past ``max_held`` frames: the frames waited for and held count as
   lost, and the client asks for a keyframe as without repair.

A plain synchronous object like its base: time is passed in, nothing here
sends.  Frames released together come out one per :meth:`push` call (the
next datagram's), in order.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from rootstream.protocol.reassembly import AssembledFrame, Reassembler, _PendingFrame
from rootstream.protocol.repair import RepairRequest, missing_ranges
from rootstream.protocol.seqnum import seq32_diff
from rootstream.protocol.video import FLAG_PARITY, SUBHEADER_SIZE

_MS = 1_000_000
DETECT_MS = 20  # an incomplete frame this old is asked for even if nothing followed it...
SILENCE_MS = 8  # ...once no datagram came for this long (a large frame is still being paced)
MAX_TRIES = 3
HOLD_MS = 100  # longer, and the keyframe's freeze is shorter than the repair's
MAX_HELD = 12
FIRST_RTT_MS = 15  # round trip assumed before one is measured: retry after 30 ms
MIN_RETRY_MS = 10
MAX_GAP = 16  # a larger jump in frame ids is a new start, not a loss to repair


@dataclass(slots=True)
class _Ask:
    """One frame waited for: its tries and when the next is due."""

    due_ns: int
    attempt: int = 0  # requests sent so far
    sent_ns: int = 0
    answered: bool = False  # a fragment arrived after a request: the RTT was sampled


class RepairingReassembler(Reassembler):
    def __init__(self, *, detect_ms: int = DETECT_MS, max_tries: int = MAX_TRIES,
                 hold_ms: int = HOLD_MS, max_held: int = MAX_HELD, **options):
        super().__init__(**options)
        self.detect_ns = detect_ms * _MS
        self.max_tries = max_tries
        self.hold_ns = hold_ms * _MS
        self.max_held = max_held
        self.rtt_ns = FIRST_RTT_MS * _MS  # smoothed, from request to first answer
        self._rtt_measured = False
        self._asks: dict[int, _Ask] = {}
        self._held: dict[int, AssembledFrame] = {}
        self._hold_since: int | None = None
        self._ready: deque[AssembledFrame] = deque()
        self._last_fragment_ns = 0

    @property
    def held(self) -> int:
        return len(self._held)

    def push(self, payload, capture_ms: int, now_ns: int) -> AssembledFrame | None:
        self._last_fragment_ns = now_ns
        fid = None
        if len(payload) >= SUBHEADER_SIZE:
            fid = int.from_bytes(payload[:4], "big")
            self._seen(fid, now_ns)
        frame = super().push(payload, capture_ms, now_ns)
        if frame is not None:  # a rebuilt frame delivered by the base
            self._ready.append(frame)
        elif fid in self._pending and fid not in self._asks and _is_last(payload):
            # The frame's last fragment came and it is still short: nothing more
            # is on its way, so ask now rather than when the next frame starts.
            self._asks[fid] = _Ask(now_ns)
        return self._ready.popleft() if self._ready else None

    def repairs_due(self, now_ns: int) -> list[RepairRequest]:
        """The requests to send now (each counted as sent)."""
        if now_ns - self._last_fragment_ns >= SILENCE_MS * _MS:
            for fid, pending in self._pending.items():
                if fid not in self._asks and now_ns - pending.first_ns >= self.detect_ns:
                    self._asks[fid] = _Ask(now_ns)
        due = []
        retry_ns = max(MIN_RETRY_MS * _MS, 2 * self.rtt_ns)
        for fid, ask in self._asks.items():
            if ask.due_ns > now_ns or ask.attempt >= self.max_tries:
                continue
            pending = self._pending.get(fid)
            ranges = () if pending is None else missing_ranges(pending.have)
            ask.attempt += 1
            ask.sent_ns, ask.due_ns, ask.answered = now_ns, now_ns + retry_ns, False
            due.append(RepairRequest(fid, ranges, ask.attempt))
        self.stats.repair_requests += len(due)
        return due

    def expire(self, now_ns: int) -> int:
        """Give up stale frames and hopeless waits; how many frames were given up."""
        given_up = super().expire(now_ns)
        waited_out = any(ask.attempt >= self.max_tries and now_ns >= ask.due_ns
                         for ask in self._asks.values())
        held_too_long = self._hold_since is not None and (
            now_ns - self._hold_since > self.hold_ns or len(self._held) > self.max_held)
        if waited_out or held_too_long:
            given_up += self._fail()
        return given_up

    # -- inside --------------------------------------------------------------------------

    def _seen(self, fid: int, now_ns: int) -> None:
        """A fragment of ``fid`` arrived: what it says about the frames before it."""
        ask = self._asks.get(fid)
        if ask is not None:
            if ask.attempt and not ask.answered:
                ask.answered = True
                sample = now_ns - ask.sent_ns
                if not self._rtt_measured:  # the first sample replaces the guess (as TCP)
                    self.rtt_ns, self._rtt_measured = sample, True
                else:
                    self.rtt_ns += (sample - self.rtt_ns) // 8
            return
        if fid in self._pending or self._last_emitted is None:
            return
        gap = seq32_diff(fid, self._last_emitted)
        if not 1 < gap <= MAX_GAP:
            return
        # Every id between the last frame delivered and this one is short: the
        # ones pending lack fragments, the others were never seen at all.
        for step in range(1, gap):
            older = (self._last_emitted + step) & 0xFFFFFFFF
            if older not in self._asks and older not in self._finished:
                self._asks[older] = _Ask(now_ns)

    def _emit(self, pending: _PendingFrame, now_ns: int) -> AssembledFrame | None:
        fid = pending.frag.frame_id
        ask = self._asks.pop(fid, None)
        if ask is not None and ask.attempt:
            self.stats.frames_repaired += 1
        frame = self._finish(pending, now_ns)
        if frame is None:
            return None
        if frame.keyframe:
            # It needs nothing older: whatever was waited for is of no use now.
            self._drop_older(fid)
        elif any(seq32_diff(f, fid) < 0 for f in self._asks):
            self._held[fid] = frame  # after the frame it may refer to, or never
            if self._hold_since is None:
                self._hold_since = now_ns
            return None
        self._ready.append(self._deliver(frame))
        self._release()
        return None

    def _release(self) -> None:
        """Held frames no longer behind a frame waited for go on, in order."""
        last = self._last_emitted
        # In id order from the last delivered (serial arithmetic: ids wrap).
        for fid in sorted(self._held, key=lambda f: f if last is None else seq32_diff(f, last)):
            if any(seq32_diff(f, fid) < 0 for f in self._asks):
                break
            self._ready.append(self._deliver(self._held.pop(fid)))
        if not self._held:
            self._hold_since = None

    def _drop_older(self, fid: int) -> None:
        for older in [f for f in self._asks if seq32_diff(f, fid) < 0]:
            self._abandon(older)
        for older in [f for f in self._held if seq32_diff(f, fid) < 0]:
            self._lose_held(older)
        if not self._held:
            self._hold_since = None

    def _fail(self) -> int:
        """Every wait given up: the frames waited for and the ones held are lost."""
        count = len(self._asks) + len(self._held)
        self.stats.repairs_failed += len(self._asks)
        for fid in list(self._asks):
            self._abandon(fid)
        for fid in list(self._held):
            self._lose_held(fid)
        self._hold_since = None
        return count

    def _abandon(self, fid: int) -> None:
        del self._asks[fid]
        if fid in self._pending:
            self._give_up(fid)
        elif fid not in self._finished:  # never seen: lost all the same
            self._remember(fid)
            self._given_up_since_emit.add(fid)
            self.stats.frames_lost += 1

    def _lose_held(self, fid: int) -> None:
        del self._held[fid]
        self._given_up_since_emit.add(fid)
        self.stats.frames_lost += 1


def _is_last(payload) -> bool:
    """Whether this VIDEO payload is the last its frame sends (the last parity
    fragment, or the last data fragment of a frame without parity)."""
    index = int.from_bytes(payload[8:10], "big")
    parity_count = int.from_bytes(payload[12:14], "big")
    if payload[14] & FLAG_PARITY:
        return index == parity_count - 1
    return parity_count == 0 and index == int.from_bytes(payload[10:12], "big") - 1


__all__ = ["RepairingReassembler"]
