"""The AUDIO payload: one Opus frame per datagram (docs/AUDIO.md).

Every AUDIO datagram (ROOT header type 0x02) carries one encoded frame plus
what the receiver needs to place it in time, network byte order::

    0  flags           u8   0x01: a redundant copy of the previous frame follows
    1  channels        u8   1 or 2
    2  samples         u16  samples per channel the primary frame decodes to
    4  position        u32  stream sample index of the primary frame, wraps
    8  captured_ns     u64  host time.monotonic_ns() of the first decoded sample
    16 primary_len     u16  bytes of the primary Opus frame (>= 1)
    18 redundant_len   u16  bytes of the redundant frame (0 without flag 0x01)
    20 redundant_samples u16 samples per channel of the redundant frame
    22 primary frame, then the redundant frame

The redundant frame is the previous frame of the stream, starting at
``position - redundant_samples``: a single lost datagram is repaired from the
next one with no concealment at all, which in-band Opus FEC cannot do in
CELT-only (restricted low-delay) mode.  ``captured_ns`` is on the same host
clock as the video capture stamps, which is what lip sync compares.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from rootstream.errors import ProtocolError
from rootstream.protocol.header import MAX_PAYLOAD

AUDIO_HEADER = struct.Struct("!BBHIQHHH")
assert AUDIO_HEADER.size == 22
AUDIO_HEADER_SIZE = AUDIO_HEADER.size

FLAG_REDUNDANT = 0x01
KNOWN_FLAGS = FLAG_REDUNDANT

# Opus frames last 2.5 to 120 ms: 120 to 5760 samples per channel at 48 kHz.
MIN_FRAME_SAMPLES = 120
MAX_FRAME_SAMPLES = 5760
MAX_OPUS_FRAME = 1275  # RFC 6716 §3.4 R2: the largest single Opus frame
MAX_AUDIO_DATA = MAX_PAYLOAD - AUDIO_HEADER_SIZE


@dataclass(frozen=True, slots=True)
class AudioPayload:
    """One AUDIO payload; ``redundant`` is empty when no copy is carried."""

    channels: int
    samples: int
    position: int
    captured_ns: int
    primary: bytes
    redundant: bytes = b""
    redundant_samples: int = 0

    @property
    def redundant_position(self) -> int:
        """Stream sample index of the redundant (previous) frame."""
        return (self.position - self.redundant_samples) & 0xFFFFFFFF

    def pack(self) -> bytes:
        _check(self.channels, self.samples, self.primary, self.redundant,
               self.redundant_samples, ValueError)
        if not 0 <= self.position <= 0xFFFFFFFF:
            raise ValueError("position must fit 32 bits")
        if not 0 <= self.captured_ns <= 0xFFFFFFFFFFFFFFFF:
            raise ValueError("captured_ns must fit 64 bits")
        flags = FLAG_REDUNDANT if self.redundant else 0
        head = AUDIO_HEADER.pack(
            flags, self.channels, self.samples, self.position, self.captured_ns,
            len(self.primary), len(self.redundant), self.redundant_samples,
        )
        return head + self.primary + self.redundant

    __bytes__ = pack

    @classmethod
    def parse(cls, payload: bytes | memoryview) -> AudioPayload:
        """Parse and validate an AUDIO payload; raises ProtocolError."""
        if len(payload) < AUDIO_HEADER_SIZE:
            raise ProtocolError("audio payload is shorter than its header")
        (flags, channels, samples, position, captured_ns, primary_len, redundant_len,
         redundant_samples) = AUDIO_HEADER.unpack_from(payload)
        if flags & ~KNOWN_FLAGS:
            raise ProtocolError("audio payload has unknown flags set")
        if bool(flags & FLAG_REDUNDANT) != (redundant_len > 0):
            raise ProtocolError("audio payload redundancy flag disagrees with its length")
        if len(payload) != AUDIO_HEADER_SIZE + primary_len + redundant_len:
            raise ProtocolError("audio payload length disagrees with its header")
        end = AUDIO_HEADER_SIZE + primary_len
        primary = bytes(payload[AUDIO_HEADER_SIZE:end])
        redundant = bytes(payload[end:])
        _check(channels, samples, primary, redundant, redundant_samples, ProtocolError)
        return cls(channels, samples, position, captured_ns, primary, redundant,
                   redundant_samples)


def _check(channels: int, samples: int, primary: bytes, redundant: bytes,
           redundant_samples: int, error: type[Exception]) -> None:
    """The rules shared by pack (ValueError: our bug) and parse (ProtocolError: theirs)."""
    if channels not in (1, 2):
        raise error("audio payload channel count must be 1 or 2")
    if not MIN_FRAME_SAMPLES <= samples <= MAX_FRAME_SAMPLES:
        raise error("audio payload frame duration is out of range")
    if not 1 <= len(primary) <= MAX_OPUS_FRAME or len(redundant) > MAX_OPUS_FRAME:
        raise error("audio payload frame size is out of range")
    if len(primary) + len(redundant) > MAX_AUDIO_DATA:
        raise error("audio payload does not fit one datagram")
    if redundant:
        if not MIN_FRAME_SAMPLES <= redundant_samples <= MAX_FRAME_SAMPLES:
            raise error("audio payload redundant frame duration is out of range")
    elif redundant_samples:
        raise error("audio payload names samples for a missing redundant frame")
