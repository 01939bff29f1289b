"""CONTROL messages of the optional features: rumble and the clipboard (docs/PROTOCOL.md §4).

Each travels only between peers that announced its capability bit
(``Capability.RUMBLE``, ``Capability.CLIPBOARD``).  They live beside
control.py, which registers them in its one parser and re-exports them,
because that module grew past the house limit; the wire rules are the same.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from rootstream.errors import ProtocolError
from rootstream.protocol.control import ControlKind, _Fixed


@dataclass(frozen=True, slots=True)
class Rumble(_Fixed):
    """Host -> client (only when the hello had Capability.RUMBLE): set pad
    ``index``'s motors to these strengths (0..0xFFFF; both 0: stop) for
    ``duration_ms`` (0: until the next rumble message for that pad)."""

    index: int = 0
    strong: int = 0
    weak: int = 0
    duration_ms: int = 0
    KIND: ClassVar[ControlKind] = ControlKind.RUMBLE
    STRUCT: ClassVar[struct.Struct] = struct.Struct("!BHHI")
    NAME: ClassVar[str] = "rumble"


@dataclass(frozen=True, slots=True)
class ClipboardData:
    """Either way (only when both announced Capability.CLIPBOARD): bytes
    ``offset``.. of transfer ``transfer``, a UTF-8 text of ``total`` bytes."""

    transfer: int = 0
    total: int = 0
    offset: int = 0
    data: bytes = b""
    KIND: ClassVar[ControlKind] = ControlKind.CLIPBOARD_DATA
    _HEAD: ClassVar[struct.Struct] = struct.Struct("!IIIH")

    def pack(self) -> bytes:
        return (bytes([self.KIND]) + self._HEAD.pack(self.transfer, self.total, self.offset,
                                                     len(self.data)) + self.data)

    __bytes__ = pack

    @classmethod
    def parse_body(cls, body: memoryview) -> ClipboardData:
        if len(body) < cls._HEAD.size:
            raise ProtocolError("clipboard data message is truncated")
        transfer, total, offset, size = cls._HEAD.unpack_from(body)
        if len(body) < cls._HEAD.size + size:
            raise ProtocolError("clipboard data message is truncated")
        if offset + size > total:
            raise ProtocolError("clipboard data message runs past the text's end")
        return cls(transfer, total, offset, bytes(body[cls._HEAD.size:cls._HEAD.size + size]))


@dataclass(frozen=True, slots=True)
class ClipboardAck(_Fixed):
    """The answer to clipboard data: every byte of ``transfer`` before ``received`` arrived."""

    transfer: int = 0
    received: int = 0
    KIND: ClassVar[ControlKind] = ControlKind.CLIPBOARD_ACK
    STRUCT: ClassVar[struct.Struct] = struct.Struct("!II")
    NAME: ClassVar[str] = "clipboard ack"


__all__ = ["ClipboardAck", "ClipboardData", "Rumble"]
