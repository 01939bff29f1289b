"""Moving one clipboard text across a lossy link: chunks, acknowledgements, resends.

A text (UTF-8, at most MAX_TEXT bytes) travels as ClipboardData chunks of
CHUNK bytes; the receiver answers every chunk with a ClipboardAck saying how
many bytes it holds in order (chunks after a gap wait in the receiver until
the gap fills).  The sender keeps at most WINDOW bytes unacknowledged and
sends from ``due()``, which the session loop calls every ~50 ms: at most
WINDOW bytes per call bounds the rate (about 0.6 MB/s), so a large copy never
crowds out input or video.  A lost chunk is resent at once when three acks in
a row stop at it (as TCP's fast retransmit), and without any progress for
RESEND_NS the sender goes back to the first unacknowledged byte.

A newer copy replaces a transfer in flight (a new transfer id; the receiver
drops the older one's bytes when the new one's first chunk arrives).  Plain
objects, time passed in: the tests drive them datagram by datagram.
"""

from __future__ import annotations

from rootstream.protocol.control import ClipboardAck, ClipboardData

MAX_TEXT = 1 << 20  # 1 MiB of UTF-8
CHUNK = 1024  # bytes per datagram: well inside a sealed payload
WINDOW = 32 * CHUNK  # in flight, and sent per due() call
RESEND_NS = 250_000_000


class Outgoing:
    """One text being sent."""

    def __init__(self, transfer: int, data: bytes) -> None:
        if len(data) > MAX_TEXT:
            raise ValueError(f"a clipboard text is at most {MAX_TEXT} bytes")
        self.transfer = transfer
        self.data = data
        self.acked = 0
        self.done = False
        self._next = 0  # the next byte to send
        self._progress_ns: int | None = None  # when the ack last moved (or the first send)
        self._repeats = 0  # acks in a row that did not move
        self._resend: list[int] = []  # offsets to send again first
        self.resends = 0

    def on_ack(self, ack: ClipboardAck, now_ns: int) -> None:
        if ack.transfer != self.transfer:
            return
        if ack.received <= self.acked and not ack.received == len(self.data) == 0:
            if ack.received == self.acked and not self.done:
                self._repeats += 1
                if self._repeats == 3:  # the chunk at ``acked`` was lost: later ones arrive
                    self._resend.append(self.acked)
                    self.resends += 1
            return
        self._repeats = 0
        self.acked = min(ack.received, len(self.data))
        self._next = max(self._next, self.acked)
        self._progress_ns = now_ns
        self.done = self.acked == len(self.data)

    def due(self, now_ns: int) -> list[ClipboardData]:
        if self.done:
            return []
        if self._progress_ns is None:
            self._progress_ns = now_ns
        elif now_ns - self._progress_ns >= RESEND_NS:
            self._next = self.acked  # nothing moved: resend from the first gap
            self._progress_ns = now_ns
            self.resends += 1
        total = len(self.data)
        chunks = [self._chunk(offset) for offset in self._resend if offset >= self.acked]
        self._resend.clear()
        limit = min(total, self.acked + WINDOW)
        if total == 0 and not chunks:
            return [self._chunk(0)]
        while self._next < limit:
            chunks.append(self._chunk(self._next))
            self._next = min(self._next + CHUNK, total)
        return chunks

    def _chunk(self, offset: int) -> ClipboardData:
        return ClipboardData(self.transfer, len(self.data), offset,
                             self.data[offset:offset + CHUNK])


class Incoming:
    """The receiving end: one text at a time, delivered once when whole."""

    def __init__(self) -> None:
        self.transfer: int | None = None
        self.total = 0
        self._buffer = bytearray()
        self._early: dict[int, bytes] = {}  # chunks after a gap, by offset
        self._delivered = False
        self.refused = 0  # announced texts over MAX_TEXT

    def on_data(self, chunk: ClipboardData) -> tuple[ClipboardAck | None, bytes | None]:
        """The ack to send (None: drop silently) and the whole text once it is complete."""
        if chunk.total > MAX_TEXT:
            self.refused += chunk.offset == 0
            return None, None
        if chunk.transfer != self.transfer:
            if chunk.offset != 0:
                return ClipboardAck(chunk.transfer, 0), None  # start over from the beginning
            self.transfer, self.total = chunk.transfer, chunk.total
            self._buffer = bytearray()
            self._early = {}
            self._delivered = False
        if chunk.offset == len(self._buffer):
            self._buffer += chunk.data
            while len(self._buffer) in self._early:
                self._buffer += self._early.pop(len(self._buffer))
        elif len(self._buffer) < chunk.offset < len(self._buffer) + WINDOW:
            self._early[chunk.offset] = chunk.data
        ack = ClipboardAck(chunk.transfer, len(self._buffer))
        if len(self._buffer) == self.total and not self._delivered:
            self._delivered = True
            return ack, bytes(self._buffer)
        return ack, None
