"""Room codes: guests join a host's room without pairing, under the pairing PAKE.

`rootstream host --room` shows a short code; `rootstream connect HOST --room
CODE` runs the very exchange of rootstream.crypto.pairing (CPace keyed by the
code, then each side's public key in a box only the code's holder opens)
with two differences, so that a room code can never stand in for a pairing
code or the reverse:

- its own START kind (0x25) and CPace channel id ("rootstream room v1"), so
  the generator, and so every key, differs from a pairing with the same
  digits;
- the code admits guest after guest: a confirmed exchange gives its try back,
  so only wrong codes use tries; after 3 the code is burned (the host shows a
  new one), and answered STARTs are still rate-limited to one a second.

Nothing is stored on either side: the host keeps its guests' keys in memory
for as long as it runs (``GuestList``), so a guest's handshake finds it and
the session is marked as a guest's (view only unless the host lets guests
take control); the client keeps the host's key for this connection only.
"""

from __future__ import annotations

from collections import OrderedDict

from rootstream.crypto import cpace
from rootstream.crypto.pairing import (
    KIND_ROOM_START,
    REASON_BURNED,
    REASON_EXPIRED,
    REASON_RATE_LIMITED,
    REASON_WRONG_CODE,
    PairingClient,
    PairingHost,
    PairingResult,
)

ROOM_LIFETIME_S = float("inf")  # a room lasts as long as its host

# What a guest is told when the host's REJECT ends its try (pairing's own
# sentences speak of pairing).
ROOM_REASONS = {
    REASON_WRONG_CODE: ("wrong room code", "check the code the host shows and try again"),
    REASON_BURNED: ("room code burned after too many wrong tries",
                    "ask the host for the new room code it shows"),
    REASON_RATE_LIMITED: ("room code tried too fast", "wait a second and try again"),
    REASON_EXPIRED: ("room code expired", "ask the host for the new room code it shows"),
}


class RoomClient(PairingClient):
    """A guest's side of one try: ``start()``, ``receive()``, then ``result`` (the host)."""

    START_KIND = KIND_ROOM_START
    CHANNEL = cpace.ROOM_CHANNEL_ID


class RoomHost(PairingHost):
    """The host's side of one room code.  After ``receive`` returns, ``take_guest()``
    gives the guest that exchange admitted, if it admitted one."""

    START_KIND = KIND_ROOM_START
    CHANNEL = cpace.ROOM_CHANNEL_ID
    REUSABLE = True

    def __init__(self, identity, code: str, now: float, **options):
        options.setdefault("lifetime", ROOM_LIFETIME_S)
        super().__init__(identity, code, now, **options)

    def take_guest(self) -> PairingResult | None:
        guest, self.result = self.result, None
        return guest

    def knows(self, sid: bytes) -> bool:
        """Whether a REPLY/CONFIRM/REJECT with this sid belongs to this room's exchanges."""
        return sid in self._exchanges


class GuestList:
    """The guests a room admitted, by public key, in memory only and bounded: the
    oldest admission is forgotten first (it can join again with the code)."""

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self._guests: OrderedDict[bytes, str] = OrderedDict()

    def add(self, public_key: bytes, name: str) -> None:
        self._guests.pop(public_key, None)
        self._guests[public_key] = name
        while len(self._guests) > self.limit:
            self._guests.popitem(last=False)

    def get(self, public_key: bytes) -> str | None:
        return self._guests.get(public_key)

    def __len__(self) -> int:
        return len(self._guests)


__all__ = ["ROOM_REASONS", "GuestList", "RoomClient", "RoomHost"]
