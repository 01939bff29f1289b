"""Who may talk to a host: the glue between the crypto core and the host loop.

The host loop hands every unsealed pairing or handshake message (CONTROL
kinds 0x20-0x2F) to ``HostGate.receive``; it answers with what to send back
and, when a trusted client finished a handshake, the session keys.  The loop
then seals everything to that client and starts the session only when the
client's first sealed datagram opens (a RESPONSE alone does not prove the
client is live: a recorded INIT replayed to a restarted host gets one).

A client holding this machine's own identity key is trusted as
"this machine": whoever can read the identity file can be the host anyway,
and it lets a user stream to themselves on one machine without pairing.

With ``room=True`` the gate also shows a room code (rootstream.crypto.room):
a guest who knows it is admitted for as long as the host runs, in memory
only, and its sessions are marked ``guest`` (view only unless the host lets
guests take control).  A paired client is never a guest, whatever it joined
with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rootstream.crypto.handshake import (
    KIND_INIT,
    REASON_BUSY,
    REASON_FULL,
    HandshakeRefused,
    HandshakeResponder,
    Refuser,
    ReplayGuard,
    SessionKeys,
)
from rootstream.crypto.identity import Identity
from rootstream.crypto.pairing import (
    KIND_ROOM_START,
    KIND_START,
    PairingFailed,
    PairingHost,
    PairingMessage,
    format_code,
    new_pairing_code,
)
from rootstream.crypto.room import GuestList, RoomHost
from rootstream.crypto.trust import TrustedPeer, TrustStore
from rootstream.errors import CryptoError, PairingError

PAIRING_KINDS = range(0x20, 0x28)
HANDSHAKE_KINDS = range(0x28, 0x30)
INITS_PER_SECOND = 4  # each INIT costs two X25519 operations before we know the client
MAX_CODES = 5  # codes shown per run before pairing closes (each allows 3 tries)
SELF_NAME = "this machine"
HOST_ENTRY_PREFIX = "host "  # rootstream.crypto.client_keys.host_entry_name


@dataclass
class GateAnswer:
    reply: bytes | None = None  # send back, unsealed
    keys: SessionKeys | None = None  # a trusted client finished a handshake
    peer_name: str = ""
    guest: bool = False  # admitted by the room code, not paired


class HostGate:
    def __init__(self, identity: Identity, trust: TrustStore, *, pairing: bool = False,
                 room: bool = False, log: Callable[[str], None] = print, now: float = 0.0):
        self.identity = identity
        self.trust = trust
        self.log = log
        self._guard = ReplayGuard()
        self._refuser = Refuser()
        self._inits: dict[object, list[float]] = {}
        self._pairing: PairingHost | None = None
        self._codes_shown = 0
        self.refused = 0
        self.guests = GuestList()
        self._room: RoomHost | None = None
        self._room_codes_shown = 0
        if pairing:
            self._new_code(now)
        if room:
            self._new_room_code(now)

    @property
    def pairing_code(self) -> str | None:
        return self._pairing.code if self._pairing is not None else None

    @property
    def room_code(self) -> str | None:
        return self._room.code if self._room is not None else None

    def _new_code(self, now: float) -> None:
        self._codes_shown, self._pairing = self._show(
            PairingHost, self._codes_shown, now,
            "pairing closed after too many wrong codes; restart with --pair to pair again",
            "pairing code {code} (type it in `rootstream pair` on the client; 3 tries)")

    def _new_room_code(self, now: float) -> None:
        self._room_codes_shown, self._room = self._show(
            RoomHost, self._room_codes_shown, now,
            "the room is closed after too many wrong codes; restart with --room to open it "
            "again",
            "room code {code} (guests join with `rootstream connect HOST --room {digits}` "
            "and watch; 3 wrong tries burn it)")

    def _show(self, exchange, shown: int, now: float, closed: str, said: str):
        """A fresh code for ``exchange`` (PairingHost, RoomHost), said in the log, or
        None once MAX_CODES were shown: each allows 3 guesses, so the total stays small."""
        if shown >= MAX_CODES:
            self.log(f"rootstream host: {closed}")
            return shown, None
        code = new_pairing_code()
        host = exchange(self.identity, code, now)
        host.code = code  # what the log showed, for the gate's pairing_code / room_code
        self.log("rootstream host: " + said.format(code=format_code(code), digits=code))
        return shown + 1, host

    def lookup(self, public_key: bytes) -> TrustedPeer | None:
        if public_key == self.identity.public_key:
            return TrustedPeer(SELF_NAME, public_key, 0.0)
        self.trust.reload()  # pairing in another process may have added it
        peer = self.trust.get(public_key)
        if peer is None or peer.name.startswith(HOST_ENTRY_PREFIX):
            return None  # a host this machine connects to is not thereby a client
        return peer

    def receive(self, data: bytes, address, now: float) -> GateAnswer:
        """Handle one unsealed pairing or handshake message; never raises."""
        kind = data[0] if data else -1
        try:
            if kind in PAIRING_KINDS and self._for_room(data):
                return self._admit(data, now)
            if kind in PAIRING_KINDS:
                return self._pair(data, now)
            if kind == KIND_INIT and self._allow_init(address, now):
                return self._handshake(data, address, len(data), now)
        except (CryptoError, PairingError):
            self.refused += 1
        return GateAnswer()

    def refuse_busy(self, address, received: int, now: float) -> bytes | None:
        """The refusal for a paired client that came while another streams."""
        return self._refuser.refuse(address, received, REASON_BUSY, now)

    def refuse_full(self, address, received: int, now: float, limit: int) -> bytes | None:
        """The refusal for a paired client past ``host --viewers``: "busy" when
        the limit is one (today's answer), "full" when several watch."""
        reason = REASON_BUSY if limit == 1 else REASON_FULL
        return self._refuser.refuse(address, received, reason, now)

    def _allow_init(self, address, now: float) -> bool:
        recent = [t for t in self._inits.get(address, []) if now - t < 1.0]
        if len(recent) >= INITS_PER_SECOND:
            return False
        recent.append(now)
        # Forget addresses quiet for a second: each client comes from a new
        # port, and a host that stays up kept one entry per session (found
        # by the soak's rejoin scenario: ~0.1 kB of heap per session).
        self._inits = {a: t for a, t in self._inits.items() if now - t[-1] < 1.0}
        if len(self._inits) > 4096:
            self._inits.clear()  # a flood of addresses: forget, stay bounded
        self._inits[address] = recent
        return True

    def _handshake(self, data: bytes, address, received: int, now: float) -> GateAnswer:
        guests: list[bytes] = []

        def lookup(public_key: bytes) -> TrustedPeer | None:
            peer = self.lookup(public_key)
            name = None if peer is not None else self.guests.get(public_key)
            if name is None:
                return peer
            guests.append(public_key)
            return TrustedPeer(name, public_key, 0.0)

        responder = HandshakeResponder(self.identity, lookup, self._guard)
        try:
            reply = responder.receive(data)
        except HandshakeRefused as exc:
            self.refused += 1
            return GateAnswer(self._refuser.refuse(address, received, exc.reason, now))
        return GateAnswer(reply, responder.keys, responder.peer.name,
                          guest=responder.peer.public_key in guests)

    def _for_room(self, data: bytes) -> bool:
        """A room exchange starts with its own START kind; its later messages are
        known by their sid."""
        if self._room is None or data[0] == KIND_START:
            return False
        return data[0] == KIND_ROOM_START or self._room.knows(PairingMessage.parse(data).sid)

    def _admit(self, data: bytes, now: float) -> GateAnswer:
        room = self._room
        try:
            reply = room.receive(data, now)
        except PairingFailed as exc:
            # No try left: a silent wrong guest keeps its exchange open forever
            # (it never says REJECT), so waiting for ``burned`` could wait forever.
            if room.burned or room.tries_left == 0:
                self.log("rootstream host: the room code was burned by wrong tries")
                self._new_room_code(now)
            return GateAnswer(exc.reply)
        guest = room.take_guest()
        if guest is not None:
            self.guests.add(guest.public_key, guest.name)
            self.log(f"rootstream host: guest {guest.name} ({guest.fingerprint}) "
                     "joined the room")
        return GateAnswer(reply)

    def _pair(self, data: bytes, now: float) -> GateAnswer:
        host = self._pairing
        if host is None:
            return GateAnswer()  # pairing is off: say nothing
        try:
            reply = host.receive(data, now)
        except PairingFailed as exc:
            if host.burned or host.expired(now):
                self._new_code(now)
            return GateAnswer(exc.reply)
        if host.result is not None:
            peer = self.trust.add(_unique_name(self.trust, host.result.name),
                                  host.result.public_key)
            self.log(f"rootstream host: paired with {peer.name} ({peer.fingerprint})")
            self._new_code(now)
        elif host.burned or host.expired(now):
            self._new_code(now)
        return GateAnswer(reply)


def _unique_name(trust: TrustStore, name: str) -> str:
    taken = {peer.name for peer in trust.list()}
    if name not in taken:
        return name
    for n in range(2, 1000):
        candidate = f"{name[:58]} ({n})"
        if candidate not in taken:
            return candidate
    return name
