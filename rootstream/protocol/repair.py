"""The repair request: a client asks for lost fragments again (docs/PROTOCOL.md §4, "Repair").

A burst of loss longer than a frame's parity leaves it incomplete; without
repair the client waits for a keyframe (a freeze of a round trip plus a large
frame, and a large frame for every viewer).  With ``Capability.REPAIR``
announced by both peers the client instead names the data fragments it lacks
and the host sends those again, sealed afresh:

    frame_id u32, attempt u8, range_count u8, then range_count times
    (first u16, count u16): data fragment indices first .. first + count - 1

``range_count`` 0 asks for every data fragment of the frame: one the client
never saw a fragment of, so it cannot know how many there are.  ``attempt``
counts the client's tries for this frame (1, 2, ...): the host only counts
it, a retry is served like the first.  Ranges are why this is not a bitmap: a
burst loses a run of consecutive fragments, which is one range (5 bytes of
message whatever the frame's size).  At most ``MAX_RANGES``; a request with
more, a count of 0, or a range past index 65535 is malformed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from rootstream.errors import ProtocolError
from rootstream.protocol.control import ControlKind

MAX_RANGES = 32
_HEAD = struct.Struct("!IBB")
_RANGE = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class RepairRequest:
    frame_id: int
    ranges: tuple[tuple[int, int], ...] = ()  # (first, count); empty: the whole frame
    attempt: int = 1

    KIND: ClassVar[ControlKind] = ControlKind.REPAIR_REQUEST

    def pack(self) -> bytes:
        if len(self.ranges) > MAX_RANGES:
            raise ValueError(f"a repair request names at most {MAX_RANGES} ranges")
        return (bytes([self.KIND]) + _HEAD.pack(self.frame_id, self.attempt, len(self.ranges))
                + b"".join(_RANGE.pack(first, count) for first, count in self.ranges))

    __bytes__ = pack

    @classmethod
    def parse_body(cls, body: memoryview) -> RepairRequest:
        if len(body) < _HEAD.size:
            raise ProtocolError("repair request message is truncated")
        frame_id, attempt, count = _HEAD.unpack_from(body)
        if count > MAX_RANGES:
            raise ProtocolError("repair request message names too many ranges")
        if len(body) < _HEAD.size + count * _RANGE.size:
            raise ProtocolError("repair request message is truncated")
        ranges = tuple(_RANGE.unpack_from(body, _HEAD.size + i * _RANGE.size)
                       for i in range(count))
        if any(n == 0 or first + n > 0x10000 for first, n in ranges):
            raise ProtocolError("repair request message has an impossible range")
        return cls(frame_id, ranges, attempt)

    def indices(self, data_count: int) -> list[int]:
        """The data fragment indices asked for, within a frame of ``data_count``,
        each once, in order."""
        if not self.ranges:
            return list(range(data_count))
        wanted = set()
        for first, n in self.ranges:
            wanted.update(range(first, min(first + n, data_count)))
        return sorted(wanted)


def missing_ranges(have, limit: int = MAX_RANGES) -> tuple[tuple[int, int], ...]:
    """The runs of zeros in ``have`` (one flag per data fragment) as (first, count),
    at most ``limit`` of them (the first ones: a request can be repeated)."""
    ranges: list[tuple[int, int]] = []
    start = None
    for index, present in enumerate(have):
        if not present and start is None:
            start = index
        elif present and start is not None:
            ranges.append((start, index - start))
            start = None
        if len(ranges) == limit:
            return tuple(ranges)
    if start is not None:
        ranges.append((start, len(have) - start))
    return tuple(ranges[:limit])


__all__ = ["MAX_RANGES", "RepairRequest", "missing_ranges"]
