"""The 16-byte ROOT header that starts every datagram (docs/PROTOCOL.md §2).

Network byte order::

    0  magic        u32  0x524F4F54 ("ROOT")
    4  version      u8   1
    5  type         u8   PacketType
    6  sequence     u16  per type, wraps
    8  timestamp    u32  sender's clock in ms, low 32 bits, wraps
    12 payload_size u16  bytes after the header, <= MAX_PAYLOAD
    14 checksum     u16  CRC-16/CCITT-FALSE over the header with this field
                         zeroed, then the payload

The reference architecture's 4-byte size field would make the header 18
bytes; a payload never exceeds 1384 bytes, so v1 keeps 16 and a 2-byte size.
"""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple

from rootstream._native._crc16 import datagram_crc, join_datagram
from rootstream.errors import ProtocolError

MAGIC = 0x524F4F54
VERSION = 1
HEADER = struct.Struct("!IBBHIHH")
assert HEADER.size == 16
HEADER_SIZE = HEADER.size
MAX_PAYLOAD = 1384
MAX_DATAGRAM = HEADER_SIZE + MAX_PAYLOAD  # 1400: fits a 1500-byte MTU with IP/UDP and room to spare
CHECKSUM_OFFSET = 14
_ZERO_CHECKSUM = b"\x00\x00"


class PacketType(enum.IntEnum):
    VIDEO = 0x01
    AUDIO = 0x02
    INPUT = 0x03
    CONTROL = 0x04


_KNOWN_TYPES = frozenset(int(t) for t in PacketType)
# Looking a member up in a dict costs a tenth of calling PacketType(value).
_TYPE_BY_VALUE = {int(t): t for t in PacketType}


class Header(NamedTuple):
    """A parsed header.  A NamedTuple rather than a frozen dataclass: it is
    built once per datagram received, and constructs about 3x faster."""

    ptype: PacketType
    sequence: int
    timestamp_ms: int
    payload_size: int
    checksum: int
    version: int = VERSION


def header_pre_image(ptype: int, seq: int, timestamp_ms: int, payload_size: int) -> bytes:
    """The 16-byte header with its checksum field zeroed.

    It is what the CRC covers before the payload, and what a sealed payload
    is bound to (``associated_data`` of the finished datagram), so a sender
    builds it once for both.  ``seq`` and ``timestamp_ms`` are reduced to 16
    and 32 bits (they wrap by design); a size over MAX_PAYLOAD or an unknown
    type is a programming error, not bad input, and raises ValueError.
    """
    if payload_size > MAX_PAYLOAD:
        raise ValueError(f"payload of {payload_size} bytes exceeds the {MAX_PAYLOAD}-byte limit")
    if ptype not in _KNOWN_TYPES:
        raise ValueError(f"unknown packet type {ptype!r}")
    return _pack_header(MAGIC, VERSION, ptype, seq & 0xFFFF, timestamp_ms & 0xFFFFFFFF,
                        payload_size, 0)


def encode_datagram(ptype: int, seq: int, timestamp_ms: int, payload: bytes | memoryview) -> bytes:
    """Build one datagram: header, checksum and payload (see header_pre_image
    for what raises ValueError)."""
    return join_datagram(header_pre_image(ptype, seq, timestamp_ms, len(payload)), payload)


def decode_datagram(data: bytes | bytearray | memoryview) -> tuple[Header, memoryview]:
    """Parse and verify one datagram; the payload is a view into ``data``.

    Raises ProtocolError, with one fixed message per cause, and nothing else.
    """
    view = memoryview(data)
    if type(data) is not bytes and (view.ndim != 1 or view.itemsize != 1):
        view = view.cast("B")  # what recvfrom returns (bytes) never needs this
    length = len(view)
    if length < HEADER_SIZE:
        raise ProtocolError("ROOT datagram is shorter than its header")
    magic, version, ptype, seq, timestamp, size, checksum = _unpack_header(view)
    if magic != MAGIC:
        raise ProtocolError("ROOT datagram has a wrong magic")
    if version != VERSION:
        raise ProtocolError("ROOT datagram has an unsupported version")
    packet_type = _TYPE_BY_VALUE.get(ptype)
    if packet_type is None:
        raise ProtocolError("ROOT datagram has an unknown packet type")
    if size > MAX_PAYLOAD:
        raise ProtocolError("ROOT payload size exceeds the limit")
    if size != length - HEADER_SIZE:
        raise ProtocolError("ROOT payload size disagrees with the datagram length")
    if datagram_crc(view) != checksum:
        raise ProtocolError("ROOT datagram has a bad checksum")
    return Header(packet_type, seq, timestamp, size, checksum), view[HEADER_SIZE:]


_unpack_header = HEADER.unpack_from
_pack_header = HEADER.pack


def associated_data(datagram: bytes | memoryview) -> bytes:
    """The bytes an AEAD binds a sealed payload to: the header, checksum zeroed.

    The checksum covers the sealed payload, so it cannot itself be sealed over.
    """
    return bytes(datagram[:CHECKSUM_OFFSET]) + _ZERO_CHECKSUM
