"""Video frame reassembly (docs/PROTOCOL.md §3): fragments in, complete frames out.

The Reassembler is a plain synchronous object: no socket, no clock of its
own (``now_ns`` is passed in), so tests drive it datagram by datagram.  Its
memory is bounded by ``max_frame_size`` and ``max_pending_bytes`` whatever a
peer sends.  The fragment layout it reads is rootstream.protocol.video's.
"""

from __future__ import annotations

import operator
from collections import OrderedDict, deque
from dataclasses import dataclass

from rootstream.errors import ProtocolError
from rootstream.protocol.seqnum import seq32_diff
from rootstream.protocol.video import (
    DEFAULT_MAX_FRAME_SIZE,
    FLAG_KEYFRAME,
    FLAG_PARITY,
    FLAG_RECOVERY,
    SUBHEADER_SIZE,
    FragmentHeader,
    group_sizes,
)


@dataclass(slots=True)
class AssembledFrame:
    """A complete encoded frame, ready for the decoder."""

    frame_id: int
    data: bytearray
    keyframe: bool
    capture_ms: int  # the host's capture clock, from the ROOT header
    host_us: int  # host processing (capture -> encoded), from the sub-header
    first_ns: int  # when its first fragment arrived (receiver's clock)
    assembled_ns: int  # when it became complete
    recovered: bool  # FEC rebuilt at least one data fragment
    lost_before: int  # frame ids skipped since the previous frame emitted
    refresh_start: bool = False  # a recovery point: an intra-refresh cycle starts here


@dataclass(slots=True)
class ReassemblyStats:
    fragments: int = 0
    duplicates: int = 0
    late: int = 0  # for frames already emitted or given up
    malformed: int = 0
    inconsistent: int = 0
    frames_completed: int = 0
    frames_recovered: int = 0
    frames_lost: int = 0
    evicted_for_memory: int = 0
    # Repair (rootstream.protocol.repair_wait): requests sent, frames they
    # completed, waits given up (a keyframe is asked for instead).
    repair_requests: int = 0
    frames_repaired: int = 0
    repairs_failed: int = 0


class _PendingFrame:
    __slots__ = ("frag", "capture_ms", "chunk", "buffer", "have", "data_received",
                 "parity", "group_have", "group_need", "groups_ready", "first_ns", "signature",
                 "groups", "data_count")

    def __init__(self, frag: FragmentHeader, capture_ms: int, now_ns: int):
        self.frag = frag
        self.signature = _signature(frag)
        self.capture_ms = capture_ms
        self.chunk = frag.chunk_size
        self.buffer = bytearray(frag.data_count * self.chunk)
        self.have = bytearray(frag.data_count)
        self.data_received = 0
        self.parity: dict[int, bytes] = {}
        g = max(frag.fec_groups, 1)
        self.groups = g
        self.data_count = frag.data_count
        self.group_have = [0] * g
        self.group_need = [group_sizes(frag.data_count, g, group) for group in range(g)]
        self.groups_ready = 0
        self.first_ns = now_ns

    @property
    def cost(self) -> int:
        return len(self.buffer) + self.frag.parity_count * self.chunk

    def add(self, frag: FragmentHeader, chunk: memoryview) -> object:
        """Store one fragment: _DUPLICATE, _STORED, or _COMPLETE (the frame can
        be emitted).  One call per datagram, so it reads plain attributes."""
        index = frag.index
        if frag.flags & FLAG_PARITY:
            if index in self.parity:
                return _DUPLICATE
            self.parity[index] = bytes(chunk)
        else:
            if self.have[index]:
                return _DUPLICATE
            self.have[index] = 1
            self.data_received += 1
            start = index * self.chunk
            self.buffer[start:start + len(chunk)] = chunk
            if self.data_received == self.data_count:
                return _COMPLETE
        group = index % self.groups
        have = self.group_have[group] = self.group_have[group] + 1
        if have == self.group_need[group]:
            self.groups_ready += 1
            if self.groups_ready == self.frag.fec_groups:
                return _COMPLETE
        return _STORED

    def rebuild(self) -> bool:
        """Fill missing data fragments from parity; True if any was rebuilt."""
        if self.data_received == self.frag.data_count:
            return False
        from rootstream.protocol.fec import ErasureCode

        frag, chunk = self.frag, self.chunk
        n, p, g = frag.data_count, frag.parity_count, frag.fec_groups
        view = memoryview(self.buffer)
        for group in range(g):
            members = range(group, n, g)
            if all(self.have[i] for i in members):
                continue
            k = len(members)
            m = group_sizes(p, g, group)
            shards: dict[int, bytes] = {}
            for pos, i in enumerate(members):
                if self.have[i]:
                    shards[pos] = bytes(view[i * chunk:(i + 1) * chunk])
            for pos in range(m):
                j = group + pos * g
                if j in self.parity:
                    shards[k + pos] = self.parity[j]
            data = ErasureCode(k, m).decode(shards)
            for pos, i in enumerate(members):
                if not self.have[i]:
                    view[i * chunk:(i + 1) * chunk] = data[pos]
        return True


class Reassembler:
    """Turns VIDEO payloads, in any order, into complete frames, each once.

    Latest frame wins: when a frame completes, every older frame still
    pending is given up and counted as lost (``lost_before`` on the frame
    emitted tells the client to ask for a keyframe).
    """

    def __init__(self, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
                 max_pending_frames: int = 8, max_pending_bytes: int = 24 * 1024 * 1024,
                 max_age_ms: int = 250, finished_memory: int = 256):
        self.max_frame_size = max_frame_size
        self.max_pending_frames = max_pending_frames
        self.max_pending_bytes = max_pending_bytes
        self.max_age_ns = max_age_ms * 1_000_000
        self.stats = ReassemblyStats()
        self._pending: OrderedDict[int, _PendingFrame] = OrderedDict()
        self._pending_bytes = 0
        self._finished: set[int] = set()
        self._finished_order: deque[int] = deque()
        self._finished_memory = finished_memory
        self._last_emitted: int | None = None
        self._given_up_since_emit: set[int] = set()

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def push(self, payload: bytes | memoryview, capture_ms: int,
             now_ns: int) -> AssembledFrame | None:
        """Take one VIDEO payload; return the frame it completes, if any.

        Malformed payloads are counted and dropped (never raised): this is
        the receive loop's boundary with the network.
        """
        self.stats.fragments += 1
        try:
            frag = FragmentHeader.parse(payload)
        except ProtocolError:
            self.stats.malformed += 1
            return None
        if frag.frame_size > self.max_frame_size:
            self.stats.malformed += 1
            return None
        fid = frag.frame_id
        pending = self._pending.get(fid)
        if pending is None:
            if fid in self._finished or (
                self._last_emitted is not None and seq32_diff(fid, self._last_emitted) <= 0
            ):
                self.stats.late += 1
                return None
            pending = self._start(frag, capture_ms, now_ns)
        elif pending.signature != _signature(frag):
            self.stats.inconsistent += 1
            return None
        elif (frag.flags ^ pending.frag.flags) & (FLAG_KEYFRAME | FLAG_RECOVERY):
            self.stats.inconsistent += 1
            return None
        outcome = pending.add(frag, memoryview(payload)[SUBHEADER_SIZE:])
        if outcome is _COMPLETE:
            return self._emit(pending, now_ns)
        if outcome is _DUPLICATE:
            self.stats.duplicates += 1
        return None

    def expire(self, now_ns: int) -> int:
        """Give up frames pending longer than max_age; returns how many."""
        stale = [fid for fid, p in self._pending.items() if now_ns - p.first_ns > self.max_age_ns]
        for fid in stale:
            self._give_up(fid)
        return len(stale)

    def _start(self, frag: FragmentHeader, capture_ms: int, now_ns: int) -> _PendingFrame:
        pending = _PendingFrame(frag, capture_ms, now_ns)
        while self._pending and (
            len(self._pending) >= self.max_pending_frames
            or self._pending_bytes + pending.cost > self.max_pending_bytes
        ):
            oldest = next(iter(self._pending))
            self.stats.evicted_for_memory += 1
            self._give_up(oldest)
        self._pending[frag.frame_id] = pending
        self._pending_bytes += pending.cost
        return pending

    def _give_up(self, fid: int) -> None:
        pending = self._pending.pop(fid)
        self._pending_bytes -= pending.cost
        self._remember(fid)
        self._given_up_since_emit.add(fid)
        self.stats.frames_lost += 1

    def _remember(self, fid: int) -> None:
        self._finished.add(fid)
        self._finished_order.append(fid)
        if len(self._finished_order) > self._finished_memory:
            self._finished.discard(self._finished_order.popleft())

    def _emit(self, pending: _PendingFrame, now_ns: int) -> AssembledFrame | None:
        frame = self._finish(pending, now_ns)
        return None if frame is None else self._deliver(frame)

    def _finish(self, pending: _PendingFrame, now_ns: int) -> AssembledFrame | None:
        """A frame whose fragments are all in (or rebuildable): out of the pending
        set and rebuilt; None when its parity does not decode."""
        frag = pending.frag
        fid = frag.frame_id
        del self._pending[fid]
        self._pending_bytes -= pending.cost
        self._remember(fid)
        try:
            recovered = pending.rebuild()
        except ProtocolError:
            # Parity that does not decode loses the frame; it is not a crash.
            # _last_emitted stays put so the next frame reports this loss.
            self.stats.malformed += 1
            self.stats.frames_lost += 1
            self._given_up_since_emit.add(fid)
            return None
        data = pending.buffer
        del data[frag.frame_size:]
        return AssembledFrame(fid, data, frag.keyframe, pending.capture_ms, frag.host_us,
                              pending.first_ns, now_ns, recovered, 0, frag.refresh_start)

    def _deliver(self, frame: AssembledFrame) -> AssembledFrame:
        """Hand a finished frame on: what it skipped is counted in ``lost_before``."""
        fid = frame.frame_id
        # Frames older than this one will never be shown: give them up now.
        if self._pending:
            for older in [f for f in self._pending if seq32_diff(f, fid) < 0]:
                self._give_up(older)
        lost_before = 0
        last = self._last_emitted
        if last is not None:
            lost_before = seq32_diff(fid, last) - 1
            if lost_before:
                # Ids in between that were never seen at all are lost too;
                # those given up while pending were counted already.
                given_up = sum(1 for f in self._given_up_since_emit
                               if seq32_diff(f, last) > 0 and seq32_diff(f, fid) < 0)
                self.stats.frames_lost += max(0, lost_before - given_up)
        if self._given_up_since_emit:
            # Keep only give-ups newer than this frame: they belong to a later gap.
            self._given_up_since_emit = {f for f in self._given_up_since_emit
                                         if seq32_diff(f, fid) > 0}
        if frame.recovered:
            self.stats.frames_recovered += 1
        self.stats.frames_completed += 1
        self._last_emitted = fid
        frame.lost_before = lost_before
        return frame


# What every fragment of one frame must agree on (the keyframe flag too,
# checked apart): frame_size, data_count, parity_count, fec_groups, host_us.
_signature = operator.itemgetter(1, 3, 4, 6, 7)

# Outcomes of _PendingFrame.add.
_DUPLICATE, _STORED, _COMPLETE = object(), object(), object()
