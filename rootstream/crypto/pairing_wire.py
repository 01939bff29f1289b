"""Pairing's messages and codes: the bytes two machines swap while pairing.

rootstream.crypto.pairing runs the exchange (CPace, the boxes, the host's
tries); this module is what it says on the wire and shows the user: the
message kinds and their parser (sizes checked before anything is opened),
REJECT reasons with their sentences and hints, the boxes' plain layout
(public key, name length, name), and the 6-digit code.  Byte layouts are in
docs/SECURITY.md; tests/test_pairing.py cuts every vector at every length.
"""

from __future__ import annotations

import secrets
import socket
import struct
from dataclasses import dataclass

from rootstream.crypto import cpace
from rootstream.crypto.identity import KEY_SIZE
from rootstream.crypto.trust import MAX_NAME_BYTES, check_peer_name
from rootstream.errors import PairingError

VERSION = 1
CODE_DIGITS = 6
SID_SIZE = cpace.SID_SIZE
TAG_SIZE = 16

# Kinds sit in the CONTROL kinds 0x20-0x2F reserved for crypto (docs/PROTOCOL.md),
# so a pairing message is a CONTROL payload as it stands.
KIND_START = 0x20
KIND_REPLY = 0x21
KIND_CONFIRM = 0x22
KIND_DONE = 0x23
KIND_REJECT = 0x24
KIND_ROOM_START = 0x25  # START of a room code's exchange (rootstream.crypto.room)
KINDS = (KIND_START, KIND_REPLY, KIND_CONFIRM, KIND_DONE, KIND_REJECT, KIND_ROOM_START)

PREFIX = struct.Struct("!BB16s")  # kind, version, sid: also the AEAD associated data
assert PREFIX.size == 18

# Reasons carried by REJECT, and the fixed message each one raises.
REASON_WRONG_CODE = 1
REASON_BURNED = 2
REASON_RATE_LIMITED = 3
REASON_EXPIRED = 4
REASON_MESSAGES = {
    REASON_WRONG_CODE: "wrong pairing code",
    REASON_BURNED: "pairing code burned after too many wrong tries",
    REASON_RATE_LIMITED: "pairing attempts too fast; wait a moment",
    REASON_EXPIRED: "pairing code expired",
}
REASON_HINTS = {
    REASON_WRONG_CODE: "check the code shown on the host and try again",
    REASON_BURNED: "start pairing again on the host to get a new code",
    REASON_RATE_LIMITED: "wait a second and try again",
    REASON_EXPIRED: "start pairing again on the host to get a new code",
}

MALFORMED = "pairing message is malformed"
UNKNOWN_EXCHANGE = "pairing message belongs to no current exchange"
CONFIRMATION_FAILED = "pairing confirmation failed authentication"



class PairingFailed(PairingError):
    """This pairing exchange is over.  Send ``reply`` to the peer if it is not None.

    Any other PairingError from ``receive`` means the message was dropped and
    the exchange goes on.
    """

    def __init__(self, message: str, *, reply: bytes | None = None, hint: str = "",
                 reason: int = 0):
        super().__init__(message, hint=hint)
        self.reply = reply
        self.reason = reason  # the REJECT reason, when one ended it


def _failed(reason: int, reply: bytes | None) -> PairingFailed:
    return PairingFailed(REASON_MESSAGES[reason], reply=reply, hint=REASON_HINTS[reason],
                         reason=reason)


def default_peer_name() -> str:
    """This machine's host name, cut to fit, as the name the peer will store."""
    name = "".join(ch for ch in socket.gethostname() if ch.isprintable()) or "rootstream"
    while len(name.encode("utf-8")) > MAX_NAME_BYTES:
        name = name[:-1]
    return name


# -- the code ----------------------------------------------------------------


def new_pairing_code() -> str:
    """A fresh uniformly random 6-digit code."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def format_code(code: str) -> str:
    """``123456`` -> ``123 456`` for display."""
    digits = normalise_code(code)
    return f"{digits[:3]} {digits[3:]}"


def normalise_code(text: str) -> str:
    """Accept the code typed with spaces or dashes; anything else is an error."""
    digits = "".join(ch for ch in text if ch not in " -")
    if len(digits) != CODE_DIGITS or not all("0" <= ch <= "9" for ch in digits):
        raise PairingError("pairing code must be 6 digits", hint="type the code the host shows")
    return digits


# -- messages ----------------------------------------------------------------


@dataclass(frozen=True)
class PairingMessage:
    """One parsed pairing message; ``body`` is everything after the prefix."""

    kind: int
    sid: bytes
    body: bytes

    @property
    def prefix(self) -> bytes:
        return PREFIX.pack(self.kind, VERSION, self.sid)

    def __bytes__(self) -> bytes:
        return self.prefix + self.body

    @classmethod
    def parse(cls, data: bytes) -> PairingMessage:
        if len(data) < PREFIX.size:
            raise PairingError(MALFORMED)
        kind, version, sid = PREFIX.unpack_from(data)
        body = bytes(data[PREFIX.size :])
        if version != VERSION:
            raise PairingError("pairing message has an unsupported version")
        sizes = {
            KIND_START: (cpace.POINT_SIZE, cpace.POINT_SIZE),
            KIND_ROOM_START: (cpace.POINT_SIZE, cpace.POINT_SIZE),
            KIND_REPLY: (cpace.POINT_SIZE + _BOX_MIN, cpace.POINT_SIZE + _BOX_MAX),
            KIND_CONFIRM: (_BOX_MIN, _BOX_MAX),
            KIND_DONE: (TAG_SIZE, TAG_SIZE),
            KIND_REJECT: (1, 1),
        }.get(kind)
        if sizes is None or not sizes[0] <= len(body) <= sizes[1]:
            raise PairingError(MALFORMED)
        if kind == KIND_REJECT and body[0] not in REASON_MESSAGES:
            raise PairingError(MALFORMED)
        return cls(kind, sid, body)


def reject_message(sid: bytes, reason: int) -> bytes:
    return bytes(PairingMessage(KIND_REJECT, sid, bytes([reason])))


# Inside the boxes: public key (32) || name length (1) || name (UTF-8).
_BOX_MIN = KEY_SIZE + 1 + 1 + TAG_SIZE
_BOX_MAX = KEY_SIZE + 1 + MAX_NAME_BYTES + TAG_SIZE


def _pack_peer(public_key: bytes, name: str) -> bytes:
    raw = check_peer_name(name).encode("utf-8")
    return public_key + bytes([len(raw)]) + raw


def _unpack_peer(plain: bytes) -> tuple[bytes, str]:
    if len(plain) < KEY_SIZE + 2 or plain[KEY_SIZE] != len(plain) - KEY_SIZE - 1:
        raise PairingError(MALFORMED)
    try:
        name = plain[KEY_SIZE + 1 :].decode("utf-8")
    except UnicodeDecodeError:
        raise PairingError("peer name is not valid") from None
    return plain[:KEY_SIZE], check_peer_name(name)
