"""The host's side of repair (docs/PROTOCOL.md §4, "Repair"): what was sent, kept
for a moment, and a budget per session for sending it again.

:class:`RepairStore` keeps the last frames' data fragments as the sender cut
them (unsealed VIDEO payloads: references to the very bytes objects that went
out, no copy).  One store serves every viewer, because every viewer is sent the
same payloads (rootstream.net.sender, rootstream.net.fanout); each repair is
sealed afresh for the viewer that asks, by the transport, with that session's
keys and counters, so no nonce is ever used twice.  It is bounded by age
(``max_age_ms``: a repair later than that is worth less than the keyframe
the client asks for instead) and by bytes, whatever the stream.

:class:`RepairBudget` is one session's token bucket: repairs to it never
exceed ``share`` of the stream's bitrate (a bad path, or a flood of requests
from the network, costs at most that much more), with a burst of
``burst_s`` of it so one lost run of fragments goes out at once.

The encode thread writes the store (``remember``, a few appends), the control
thread reads it (``lookup``): a lock keeps the two apart.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import NamedTuple

_MS = 1_000_000
MAX_AGE_MS = 250
MAX_BYTES = 8 * 1024 * 1024
REPAIR_SHARE = 0.25
BURST_S = 0.1
MIN_BURST_BYTES = 64 * 1024


class StoredFrame(NamedTuple):
    data: list[bytes]  # its data fragments, index order
    capture_ms: int  # the ROOT timestamp its fragments carried
    sent_ns: int
    size: int


class RepairStore:
    def __init__(self, *, max_age_ms: int = MAX_AGE_MS, max_bytes: int = MAX_BYTES):
        self.max_age_ns = max_age_ms * _MS
        self.max_bytes = max_bytes
        self._frames: OrderedDict[int, StoredFrame] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._frames)

    def remember(self, frame_id: int, data: list[bytes], capture_ms: int, now_ns: int) -> None:
        size = sum(len(p) for p in data)
        with self._lock:
            old = self._frames.pop(frame_id, None)
            if old is not None:
                self._bytes -= old.size
            if size > self.max_bytes:
                return  # a frame larger than the whole store is not kept
            self._frames[frame_id] = StoredFrame(data, capture_ms, now_ns, size)
            self._bytes += size
            self._trim(now_ns)

    def lookup(self, frame_id: int, now_ns: int) -> StoredFrame | None:
        """The frame's fragments, or None when it is gone (too old, pushed out)."""
        with self._lock:
            self._trim(now_ns)
            return self._frames.get(frame_id)

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()
            self._bytes = 0

    def _trim(self, now_ns: int) -> None:
        frames = self._frames
        while frames:
            oldest = next(iter(frames.values()))
            if self._bytes <= self.max_bytes and now_ns - oldest.sent_ns <= self.max_age_ns:
                return
            frames.popitem(last=False)
            self._bytes -= oldest.size


class RepairBudget:
    """Bytes one session may be sent again: ``share`` of the bitrate, as a token bucket."""

    def __init__(self, *, share: float = REPAIR_SHARE, burst_s: float = BURST_S):
        self.share = share
        self.burst_s = burst_s
        self._tokens: float | None = None  # full at the first use
        self._last_ns = 0

    def take(self, size: int, bitrate_bps: int, now_ns: int) -> bool:
        """Spend ``size`` bytes if the bucket holds them; False (nothing spent) if not."""
        rate = self.share * bitrate_bps / 8  # bytes per second
        capacity = max(MIN_BURST_BYTES, rate * self.burst_s)
        if self._tokens is None:
            self._tokens = capacity
        else:
            elapsed = max(0, now_ns - self._last_ns) / 1e9
            self._tokens = min(capacity, self._tokens + elapsed * rate)
        self._last_ns = now_ns
        if size > self._tokens:
            return False
        self._tokens -= size
        return True
