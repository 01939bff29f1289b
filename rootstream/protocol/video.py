"""Video frame fragmentation (docs/PROTOCOL.md §3); reassembly is rootstream.protocol.reassembly.

An encoded frame (a 1 KB P-frame to a multi-megabyte IDR) is cut into
fragments that each fit one VIDEO datagram.  Every fragment starts with a
20-byte sub-header, network byte order::

    0  frame_id        u32  +1 per encoded frame, wraps
    4  frame_size      u32  bytes of the whole encoded frame
    8  index           u16  data: 0..data_count-1; parity: 0..parity_count-1
    10 data_count      u16  N, data fragments in the frame
    12 parity_count    u16  P, FEC parity fragments in the frame (0: no FEC)
    14 flags           u8   0x01 keyframe, 0x02 this is a parity fragment,
                            0x04 recovery point (an intra-refresh cycle starts)
    15 fec_groups      u8   G, FEC groups (0 when P == 0)
    16 host_us         u32  host processing so far: capture -> encoded, in µs

Data fragments all carry L = ceil(frame_size / N) bytes except the last,
which carries the rest (never zero bytes).  Parity fragments carry exactly L
bytes.  Data fragment i belongs to FEC group i % G at position i // G; parity
fragment j to group j % G at position k_g + j // G.  Interleaving the groups
spreads a burst of consecutive losses across them.

A sender cuts a frame once (:meth:`VideoFragmenter.cut`) into a
:class:`FragmentedFrame`: its data payloads at once, its parity computed on
first use and kept, so a frame sent to several sessions costs the
arithmetic once.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import NamedTuple

from rootstream.errors import ProtocolError
from rootstream.protocol.header import MAX_PAYLOAD

SUBHEADER = struct.Struct("!IIHHHBBI")
assert SUBHEADER.size == 20
SUBHEADER_SIZE = SUBHEADER.size

FLAG_KEYFRAME = 0x01
FLAG_PARITY = 0x02
FLAG_RECOVERY = 0x04

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


def group_sizes(count: int, groups: int, group: int) -> int:
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
    def refresh_start(self) -> bool:
        return bool(self.flags & FLAG_RECOVERY)

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
        frame = self.cut(data, keyframe=keyframe, host_us=host_us)
        return frame.data + frame.parity()

    def fragment_split(self, data: bytes | memoryview, *, keyframe: bool, host_us: int = 0
                       ) -> tuple[list[bytes], Callable[[], list[bytes]]]:
        """(the data fragments, a function returning the parity): :meth:`cut` as a pair."""
        frame = self.cut(data, keyframe=keyframe, host_us=host_us)
        return frame.data, frame.parity

    def cut(self, data: bytes | memoryview, *, keyframe: bool,
            host_us: int = 0, refresh_start: bool = False) -> FragmentedFrame:
        """One frame's payloads: the data fragments now, the parity when asked.

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
        flags = (FLAG_KEYFRAME if keyframe else 0) | (FLAG_RECOVERY if refresh_start else 0)
        host_us = min(max(host_us, 0), 0xFFFFFFFF)
        view = memoryview(data)
        pack = SUBHEADER.pack
        payloads = [
            pack(frame_id, size, i, n, p, flags, g, host_us) + view[i * chunk:(i + 1) * chunk]
            for i in range(n)
        ]
        return FragmentedFrame(payloads, view, FragmentHeader(frame_id, size, 0, n, p, flags, g,
                                                              host_us))


class FragmentedFrame:
    """One frame cut into VIDEO payloads: ``data`` at once, ``parity()`` once.

    The parity is computed on the first call and kept: every session the
    frame goes to gets the same payloads, sealed per session afterwards.
    """

    __slots__ = ("data", "_view", "_layout", "_parity")

    def __init__(self, data: list[bytes], view: memoryview, layout: FragmentHeader):
        self.data = data
        self._view = view
        self._layout = layout  # the frame's sub-header fields (index unused)
        self._parity: list[bytes] | None = None

    @property
    def frame_id(self) -> int:
        return self._layout.frame_id

    def parity(self) -> list[bytes]:
        if self._parity is None:
            frame_id, size, _, n, p, flags, g, host_us = self._layout
            self._parity = []
            if p:
                chunk = -(-size // n)
                pflags = flags | FLAG_PARITY
                pack = SUBHEADER.pack
                self._parity = [pack(frame_id, size, j, n, p, pflags, g, host_us) + shard
                                for j, shard in enumerate(
                                    _encode_parity(self._view, chunk, n, p, g))]
        return self._parity


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
        m = group_sizes(p, g, group)
        for pos, shard in enumerate(ErasureCode(len(shards), m).encode(shards)):
            parity[group + pos * g] = shard
    return parity
