"""CONTROL messages for handing control between viewers (docs/PROTOCOL.md §4, "Control").

With several viewers one of them holds control: only its input, clipboard,
microphone and rumble flow.  Three messages move it, and travel only between
peers that both announced ``Capability.HANDOFF``:

- ``ControlRequest`` (client -> host): ask for control, or give it back.
- ``ControlAnswer`` (the holder's client -> host): grant or deny the request
  the state showed as pending (by the asker's viewer number, so a late answer
  never grants a newer asker).
- ``ControlState`` (host -> every client): who holds control, how many
  watch, which request waits, and what became of this client's own request.
  Sent on every change and again every second: it is a state, not an edge,
  so a lost one is healed by the next and a duplicate changes nothing.
  ``change`` counts changes (serial arithmetic), so a client ignores one
  older than what it shows.

They live beside control.py (which registers them in its parser) because
that module is full; the wire rules are the same: fields in network byte
order, appended only, strings a u8 length then at most 64 bytes of UTF-8.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import ClassVar

from rootstream.errors import ProtocolError
from rootstream.protocol.control import ControlKind, _Fixed, _pack_string, _unpack_string


class ControlAction(enum.IntEnum):
    ASK = 1  # let me control (the hotkey, `connect --control`)
    GIVE_BACK = 2  # I stop controlling


class HandoffMode(enum.IntEnum):
    """`host --handoff`: what a request for control does."""

    ASK = 0  # the holder's client shows it; the holder accepts or denies
    FREE = 1  # the asker gets control at once
    LOCKED = 2  # control never moves while its holder is there


class RequestOutcome(enum.IntEnum):
    """What became of the receiving client's latest request (in ControlState)."""

    NONE = 0  # it asked nothing (or that was settled long ago)
    GRANTED = 1
    WAITING = 2  # the holder has been asked
    DENIED = 3  # the holder said no, or did not answer in time
    LOCKED = 4  # `--handoff locked`
    NOT_ALLOWED = 5  # a guest, without `--handoff free --guests-control`
    BUSY = 6  # another viewer's request is waiting for the holder


class StateFlag(enum.IntFlag):
    MAY_ASK = 0x01  # this client may ask for control (it is no guest, or guests may)
    GUEST = 0x02  # this client joined with the room code


NOBODY = 0  # viewer number of no viewer


class _Checked(_Fixed):
    """A fixed message whose last field takes only some values: anything else would
    not survive a round trip, so it is refused with the message's own sentence."""

    ALLOWED: ClassVar[frozenset[int]]
    UNKNOWN: ClassVar[str]

    @classmethod
    def parse_body(cls, body: memoryview):
        if len(body) < cls.STRUCT.size:
            raise ProtocolError(f"{cls.NAME} message is truncated")
        values = cls.STRUCT.unpack_from(body)
        if values[-1] not in cls.ALLOWED:
            raise ProtocolError(f"{cls.NAME} message has an unknown {cls.UNKNOWN}")
        return cls(*values)


@dataclass(frozen=True, slots=True)
class ControlRequest(_Checked):
    action: int = ControlAction.ASK
    KIND: ClassVar[ControlKind] = ControlKind.CONTROL_REQUEST
    STRUCT: ClassVar[struct.Struct] = struct.Struct("!B")
    NAME: ClassVar[str] = "control request"
    ALLOWED: ClassVar[frozenset[int]] = frozenset(ControlAction)
    UNKNOWN: ClassVar[str] = "action"


@dataclass(frozen=True, slots=True)
class ControlAnswer(_Checked):
    asker: int = NOBODY  # the viewer number the state showed as pending
    grant: int = 0  # 1: grant, 0: deny
    KIND: ClassVar[ControlKind] = ControlKind.CONTROL_ANSWER
    STRUCT: ClassVar[struct.Struct] = struct.Struct("!HB")
    NAME: ClassVar[str] = "control answer"
    ALLOWED: ClassVar[frozenset[int]] = frozenset({0, 1})
    UNKNOWN: ClassVar[str] = "answer"


@dataclass(frozen=True, slots=True)
class ControlState:
    change: int = 0  # +1 per change of any field but `you`, wraps at 2^32
    you: int = NOBODY  # the receiving client's viewer number
    holder: int = NOBODY  # who holds control (NOBODY: no one)
    watching: int = 0  # viewers connected besides the holder
    mode: int = HandoffMode.ASK
    flags: int = 0  # StateFlag
    pending: int = NOBODY  # whose request waits for the holder's answer
    outcome: int = RequestOutcome.NONE  # of the receiving client's latest request
    holder_name: str = ""
    pending_name: str = ""

    KIND: ClassVar[ControlKind] = ControlKind.CONTROL_STATE
    _HEAD: ClassVar[struct.Struct] = struct.Struct("!IHHHBBHB")

    @property
    def you_hold(self) -> bool:
        return self.holder != NOBODY and self.holder == self.you

    def pack(self) -> bytes:
        return (bytes([self.KIND])
                + self._HEAD.pack(self.change, self.you, self.holder, self.watching, self.mode,
                                  self.flags, self.pending, self.outcome)
                + _pack_string(self.holder_name) + _pack_string(self.pending_name))

    __bytes__ = pack

    @classmethod
    def parse_body(cls, body: memoryview) -> ControlState:
        if len(body) < cls._HEAD.size:
            raise ProtocolError("control state message is truncated")
        fields = cls._HEAD.unpack_from(body)
        holder_name, end = _unpack_string(body, cls._HEAD.size, "control state")
        pending_name, _ = _unpack_string(body, end, "control state")
        return cls(*fields, holder_name, pending_name)


HANDOFF_MESSAGES = (ControlRequest, ControlAnswer, ControlState)

__all__ = ["HANDOFF_MESSAGES", "NOBODY", "ControlAction", "ControlAnswer", "ControlRequest",
           "ControlState", "HandoffMode", "RequestOutcome", "StateFlag"]
