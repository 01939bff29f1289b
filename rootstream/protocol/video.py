"""Video frame fragmentation and reassembly (docs/PROTOCOL.md §3).

An encoded frame (a 1 KB P-frame to a multi-megabyte IDR) is cut into
fragments that each fit one VIDEO datagram.  Every fragment starts with a
20-byte sub-header, network byte order::

    0  frame_id        u32  +1 per encoded frame, wraps
    4  frame_size      u32  bytes of the whole encoded frame
    8  index           u16  data: 0..data_count-1; parity: 0..parity_count-1
    10 data_count      u16  N, data fragments in the frame
    12 parity_count    u16  P, FEC parity fragments in the frame (0: no FEC)
    14 flags           u8   0x01 keyframe, 0x02 this is a parity fragment
    15 fec_groups      u8   G, FEC groups (0 when P == 0)
    16 host_us         u32  host processing so far: capture -> encoded, in µs

Data fragments all carry L = ceil(frame_size / N) bytes except the last,
which carries the rest (never zero bytes).  Parity fragments carry exactly L
bytes.  Data fragment i belongs to FEC group i % G at position i // G; parity
fragment j to group j % G at position k_g + j // G.  Interleaving the groups
spreads a burst of consecutive losses across them.

The Reassembler is a plain synchronous object: no socket, no clock of its
own (``now_ns`` is passed in), so tests drive it datagram by datagram.  Its
memory is bounded by ``max_frame_size`` and ``max_pending_bytes`` whatever a
peer sends.
"""

from __future__ import annotations

import math
import operator
import struct
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from rootstream.errors import ProtocolError
from rootstream.protocol.header import MAX_PAYLOAD
from rootstream.protocol.seqnum import seq32_diff

SUBHEADER = struct.Struct("!IIHHHBBI")
assert SUBHEADER.size == 20
SUBHEADER_SIZE = SUBHEADER.size

FLAG_KEYFRAME = 0x01
FLAG_PARITY = 0x02

MAX_GROUP_SHARDS = 255  # k + m per group: the limit of a GF(2^8) code
# Encoding costs k * m * L per group, so for a fixed parity share the cost
# grows with the group size: groups of at most 32 data fragments keep a
# 400 KB IDR's parity near a millisecond, and interleaving still spreads a
# burst across groups.
SENDER_GROUP_DATA = 32
MAX_FRAGMENTS = 0xFFFF
DEFAULT_MAX_FRAME_SIZE = 8 * 1024 * 1024


def plan_fec_groups(data_count: int, parity_count: int,
                    group_data: int = SENDER_GROUP_DATA) -> int:
    """How many interleaved FEC groups a sender uses (0 without parity).

    Groups hold at most ``group_data`` data fragments and never more than 255
    shards each.  Every group needs a parity fragment: the fragmenter raises
    the parity count to at least the group count.
    """
    if parity_count == 0:
        return 0
    groups = min(255, max(1, math.ceil(data_count / group_data)))
    while math.ceil(data_count / groups) + math.ceil(parity_count / groups) > MAX_GROUP_SHARDS:
        if groups == 255:  # u8 field: a frame this large (~80 MB) goes without FEC
            return 0
        groups += 1
    return groups


def _group_sizes(count: int, groups: int, group: int) -> int:
    """How many of ``count`` items, dealt round-robin, land in ``group``."""
    return count // groups + (1 if group < count % groups else 0)


class FragmentHeader(NamedTuple):
    """The sub-header of one VIDEO payload.

    A NamedTuple rather than a frozen dataclass: one is built per datagram
    received, and a tuple constructs several times faster.
    """

    frame_id: int
    frame_size: int
    index: int
    data_count: int
    parity_count: int
    flags: int
    fec_groups: int
    host_us: int

    @property
    def keyframe(self) -> bool:
        return bool(self.flags & FLAG_KEYFRAME)

    @property
    def is_parity(self) -> bool:
        return bool(self.flags & FLAG_PARITY)

    @property
    def chunk_size(self) -> int:
        return -(-self.frame_size // self.data_count)

    def pack(self) -> bytes:
        return SUBHEADER.pack(*self)

    __bytes__ = pack

    @classmethod
    def parse(cls, payload: bytes | memoryview) -> FragmentHeader:
        """Parse and validate the sub-header of a VIDEO payload."""
        if len(payload) < SUBHEADER_SIZE:
            raise ProtocolError("video fragment is shorter than its sub-header")
        fields = _unpack_subheader(payload)
        _, size, index, n, p, flags, g, _ = fields
        if n == 0 or size == 0:
            raise ProtocolError("video fragment describes an empty frame")
        chunk = -(-size // n)
        if size < n or (n - 1) * chunk >= size:
            raise ProtocolError("video fragment count disagrees with the frame size")
        if (p == 0) != (g == 0) or g > n or g > p or (
            p and -(-n // g) + -(-p // g) > MAX_GROUP_SHARDS
        ):
            raise ProtocolError("video fragment has an impossible FEC layout")
        parity = flags & FLAG_PARITY
        if index >= (p if parity else n):
            raise ProtocolError("video fragment index is out of range")
        if not parity and index == n - 1:
            chunk = size - (n - 1) * chunk
        if len(payload) - SUBHEADER_SIZE != chunk:
            raise ProtocolError("video fragment length disagrees with its sub-header")
        return tuple.__new__(cls, fields)


_unpack_subheader = SUBHEADER.unpack_from


class VideoFragmenter:
    """Cuts encoded frames into VIDEO payloads; owns the frame id counter.

    ``max_payload`` is the payload budget per datagram (smaller when the
    session seals packets); ``fec_share`` adds about that share of parity
    fragments (at least ``fec_minimum``) when above zero.
    """

    def __init__(self, *, max_payload: int = MAX_PAYLOAD, fec_share: float = 0.0,
                 fec_minimum: int = 2, first_frame_id: int = 0):
        if not SUBHEADER_SIZE < max_payload <= MAX_PAYLOAD:
            raise ValueError(f"max_payload must be in ({SUBHEADER_SIZE}, {MAX_PAYLOAD}]")
        if not 0.0 <= fec_share <= 1.0:
            raise ValueError("fec_share must be between 0 and 1")
        self.max_chunk = max_payload - SUBHEADER_SIZE
        self.fec_share = fec_share
        self.fec_minimum = fec_minimum
        self.next_frame_id = first_frame_id & 0xFFFFFFFF

    def parity_count(self, data_count: int) -> int:
        if self.fec_share <= 0.0:
            return 0
        return min(MAX_FRAGMENTS, max(self.fec_minimum, math.ceil(data_count * self.fec_share)))

    def fragment(self, data: bytes | memoryview, *, keyframe: bool,
                 host_us: int = 0) -> list[bytes]:
        """Return the payloads of one frame: data fragments, then parity."""
        payloads, parity = self.fragment_split(data, keyframe=keyframe, host_us=host_us)
        return payloads + parity()

    def fragment_split(self, data: bytes | memoryview, *, keyframe: bool, host_us: int = 0
                       ) -> tuple[list[bytes], Callable[[], list[bytes]]]:
        """The data fragments now, and a function that computes the parity.

        A sender puts the data fragments on the wire first: a client that
        loses nothing completes the frame without waiting for the parity to
        be computed (about 2 ms for a 400 KB keyframe).
        """
        size = len(data)
        if size == 0:
            raise ValueError("cannot send an empty frame")
        n = -(-size // self.max_chunk)
        if n > MAX_FRAGMENTS:
            raise ValueError(f"frame of {size} bytes needs more than {MAX_FRAGMENTS} fragments")
        chunk = -(-size // n)
        p = self.parity_count(n)
        g = plan_fec_groups(n, p)
        p = max(p, g) if g else 0
        frame_id = self.next_frame_id
        self.next_frame_id = (frame_id + 1) & 0xFFFFFFFF
        flags = FLAG_KEYFRAME if keyframe else 0
        host_us = min(max(host_us, 0), 0xFFFFFFFF)
        view = memoryview(data)
        pack = SUBHEADER.pack
        payloads = [
            pack(frame_id, size, i, n, p, flags, g, host_us) + view[i * chunk:(i + 1) * chunk]
            for i in range(n)
        ]

        def parity_payloads() -> list[bytes]:
            if not p:
                return []
            parity = _encode_parity(view, chunk, n, p, g)
            pflags = flags | FLAG_PARITY
            return [pack(frame_id, size, j, n, p, pflags, g, host_us) + parity[j]
                    for j in range(p)]

        return payloads, parity_payloads


def _encode_parity(view: memoryview, chunk: int, n: int, p: int, g: int) -> list[bytes]:
    """Parity fragments for every group, indexed by parity fragment number."""
    from rootstream.protocol.fec import ErasureCode

    parity: list[bytes] = [b""] * p
    for group in range(g):
        shards = []
        for i in range(group, n, g):
            shard = bytes(view[i * chunk:(i + 1) * chunk])
            if len(shard) < chunk:
                shard += bytes(chunk - len(shard))
            shards.append(shard)
        m = _group_sizes(p, g, group)
        for pos, shard in enumerate(ErasureCode(len(shards), m).encode(shards)):
            parity[group + pos * g] = shard
    return parity


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
        self.group_need = [_group_sizes(frag.data_count, g, group) for group in range(g)]
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
            m = _group_sizes(p, g, group)
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
        elif (frag.flags ^ pending.frag.flags) & FLAG_KEYFRAME:
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
        frag = pending.frag
        fid = frag.frame_id
        del self._pending[fid]
        self._pending_bytes -= pending.cost
        self._remember(fid)
        # Frames older than this one will never be shown: give them up now.
        if self._pending:
            for older in [f for f in self._pending if seq32_diff(f, fid) < 0]:
                self._give_up(older)
        try:
            recovered = pending.rebuild()
        except ProtocolError:
            # Parity that does not decode loses the frame; it is not a crash.
            # _last_emitted stays put so the next frame reports this loss.
            self.stats.malformed += 1
            self.stats.frames_lost += 1
            self._given_up_since_emit.add(fid)
            return None
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
        if recovered:
            self.stats.frames_recovered += 1
        self.stats.frames_completed += 1
        data = pending.buffer
        del data[frag.frame_size:]
        self._last_emitted = fid
        return AssembledFrame(fid, data, frag.keyframe, pending.capture_ms, frag.host_us,
                              pending.first_ns, now_ns, recovered, lost_before)


# What every fragment of one frame must agree on (the keyframe flag too,
# checked apart): frame_size, data_count, parity_count, fec_groups, host_us.
_signature = operator.itemgetter(1, 3, 4, 6, 7)

# Outcomes of _PendingFrame.add.
_DUPLICATE, _STORED, _COMPLETE = object(), object(), object()
