"""The session handshake: Noise IK between two paired identities.

Every connection runs it with fresh ephemeral keys, so recorded traffic stays
secret even if a long-term key later leaks (forward secrecy), and both sides
prove they hold the static key the other paired with.  Messages (docs/SECURITY.md)::

    client -> host   INIT      0x28, version, Noise message 1 (e, es, s, ss, {timestamp})
    host -> client   RESPONSE  0x29, version, Noise message 2 (e, ee, se, {})
    host -> client   REFUSED   0x2A, version, reason         (unauthenticated, 3 bytes)

The kinds sit in the CONTROL kinds 0x20-0x2F reserved for crypto
(docs/PROTOCOL.md), so each message is a CONTROL payload as it stands.

The host learns the client's static key from INIT and refuses it unless the
trust store knows it.  INIT's encrypted payload is the client's wall-clock
time in nanoseconds; the host keeps the newest per client and drops an INIT
that is not newer (a replay), as WireGuard does.  Even so, RESPONSE does not
prove the client is live: the host must not start streaming until the first
sealed packet from the client opens.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rootstream.crypto.identity import KEY_SIZE, Identity
from rootstream.crypto.noise import MSG1_OVERHEAD, MSG2_OVERHEAD, NoiseIK
from rootstream.crypto.seal import (
    INITIATOR_TO_RESPONDER,
    RESPONDER_TO_INITIATOR,
    Opener,
    Sealer,
)
from rootstream.crypto.trust import TrustedPeer
from rootstream.errors import CryptoError

VERSION = 1
KIND_INIT = 0x28
KIND_RESPONSE = 0x29
KIND_REFUSED = 0x2A
PROLOGUE = b"rootstream handshake v1"
TIMESTAMP_SIZE = 8
INIT_SIZE = 2 + MSG1_OVERHEAD + TIMESTAMP_SIZE
RESPONSE_SIZE = 2 + MSG2_OVERHEAD
REFUSAL_SIZE = 3
assert (INIT_SIZE, RESPONSE_SIZE) == (106, 50)

REASON_NOT_PAIRED = 1
REASON_UNKNOWN_HOST_KEY = 2
REASON_BUSY = 3  # a paired client, but another one is streaming
REASON_FULL = 4  # a paired client, but host --viewers N already has N watching
REFUSAL_MESSAGES = {
    REASON_NOT_PAIRED: "the host refused: this client is not paired with it",
    REASON_UNKNOWN_HOST_KEY: "the host refused: it does not hold the key this client paired with",
    REASON_BUSY: "the host is busy with another client",
    REASON_FULL: "the host is full: as many viewers watch as its --viewers allows",
}
REFUSAL_HINTS = {
    REASON_NOT_PAIRED: "pair first: run `rootstream pair` on both machines",
    REASON_UNKNOWN_HOST_KEY: "the host's identity changed; forget it and pair again",
    REASON_BUSY: "wait until the other session ends, then connect again",
    REASON_FULL: "wait until a viewer leaves, or ask for a host started with a larger --viewers",
}

MALFORMED = "handshake message is malformed"
REPLAYED = "handshake message is a replay"


class HandshakeRefused(CryptoError):
    """The handshake ends in a refusal; ``reason`` is one of the REASON_* codes."""

    def __init__(self, reason: int):
        super().__init__(REFUSAL_MESSAGES[reason], hint=REFUSAL_HINTS[reason])
        self.reason = reason


@dataclass(frozen=True)
class SessionKeys:
    """One key per direction and a session id both sides share."""

    tx_key: bytes = field(repr=False)
    rx_key: bytes = field(repr=False)
    session_id: bytes  # the 32-byte Noise handshake hash
    peer_public_key: bytes
    initiator: bool

    @property
    def tx_direction(self) -> int:
        return INITIATOR_TO_RESPONDER if self.initiator else RESPONDER_TO_INITIATOR

    @property
    def rx_direction(self) -> int:
        return RESPONDER_TO_INITIATOR if self.initiator else INITIATOR_TO_RESPONDER

    def sealer(self) -> Sealer:
        return Sealer(self.tx_key, self.tx_direction)

    def opener(self, window: int = 1024) -> Opener:
        return Opener(self.rx_key, self.rx_direction, window=window)


def _parse(data: bytes, kind: int, size: int) -> bytes:
    if len(data) < 2 or data[1] != VERSION:
        raise CryptoError(MALFORMED)
    if data[0] != kind or len(data) != size:
        raise CryptoError(MALFORMED)
    return bytes(data[2:])


def refusal_message(reason: int) -> bytes:
    if reason not in REFUSAL_MESSAGES:
        raise CryptoError("unknown refusal reason")
    return bytes([KIND_REFUSED, VERSION, reason])


class HandshakeInitiator:
    """The client side: it knows the host's static key from pairing."""

    def __init__(self, identity: Identity, host_public_key: bytes, now_ns: int | None = None,
                 *, _ephemeral: bytes | None = None):
        if len(host_public_key) != KEY_SIZE:
            raise CryptoError("host public key must be 32 bytes")
        self._noise = NoiseIK(initiator=True, static=identity, prologue=PROLOGUE,
                              remote_static=bytes(host_public_key), ephemeral_secret=_ephemeral)
        stamp = time.time_ns() if now_ns is None else now_ns
        self._init = bytes([KIND_INIT, VERSION]) + self._noise.write_message_1(
            stamp.to_bytes(TIMESTAMP_SIZE, "big"))
        self.keys: SessionKeys | None = None

    def start(self) -> bytes:
        """The INIT message.

        Do not resend it: the host drops an INIT that is not newer than the
        last one it accepted from this client.  To retry, make a new
        HandshakeInitiator (fresh ephemeral key and timestamp) and forget the
        old one; a late RESPONSE to the old INIT then fails authentication on
        the new initiator and is dropped, so both sides end on the same keys."""
        return self._init

    def receive(self, data: bytes) -> None:
        if self.keys is not None:
            raise CryptoError("handshake is already finished")
        if len(data) == REFUSAL_SIZE and data[:2] == bytes([KIND_REFUSED, VERSION]):
            if data[2] not in REFUSAL_MESSAGES:
                raise CryptoError(MALFORMED)
            raise HandshakeRefused(data[2])
        self._noise.read_message_2(_parse(data, KIND_RESPONSE, RESPONSE_SIZE))
        to_host, to_client = self._noise.split()
        self.keys = SessionKeys(to_host, to_client, self._noise.handshake_hash,
                                self._noise.remote_static, initiator=True)


class ReplayGuard:
    """The newest INIT timestamp seen per client key; one guard per host process."""

    def __init__(self):
        self._newest: dict[bytes, int] = {}

    def accept(self, public_key: bytes, stamp: int) -> None:
        if stamp <= self._newest.get(public_key, -1):
            raise CryptoError(REPLAYED)
        self._newest[public_key] = stamp


class HandshakeResponder:
    """The host side.  ``lookup(public_key)`` returns the TrustedPeer or None
    (pass ``TrustStore.get``)."""

    def __init__(self, identity: Identity, lookup: Callable[[bytes], TrustedPeer | None],
                 replay_guard: ReplayGuard | None = None, *, _ephemeral: bytes | None = None):
        self._identity = identity
        self._lookup = lookup
        self._guard = replay_guard
        self._ephemeral = _ephemeral
        self.keys: SessionKeys | None = None
        self.peer: TrustedPeer | None = None

    def receive(self, data: bytes) -> bytes:
        """Answer an INIT with RESPONSE, or raise HandshakeRefused (send
        ``refusal_message(exc.reason)`` through a Refuser) or CryptoError (drop)."""
        if self.keys is not None:
            raise CryptoError("handshake is already finished")
        body = _parse(data, KIND_INIT, INIT_SIZE)
        noise = NoiseIK(initiator=False, static=self._identity, prologue=PROLOGUE,
                        ephemeral_secret=self._ephemeral)
        try:
            payload = noise.read_message_1(body)
        except CryptoError:
            raise HandshakeRefused(REASON_UNKNOWN_HOST_KEY) from None
        client_key = noise.remote_static
        peer = self._lookup(client_key)
        if peer is None:
            raise HandshakeRefused(REASON_NOT_PAIRED)
        if self._guard is not None:
            self._guard.accept(client_key, int.from_bytes(payload, "big"))
        response = bytes([KIND_RESPONSE, VERSION]) + noise.write_message_2(b"")
        to_host, to_client = noise.split()
        self.keys = SessionKeys(to_client, to_host, noise.handshake_hash, client_key,
                                initiator=False)
        self.peer = peer
        return response


class Refuser:
    """Decides whether to answer a refused INIT: at most one refusal per
    address per ``cooldown`` seconds, and never more bytes than were received,
    so a spoofed source address can never be used to amplify traffic."""

    def __init__(self, cooldown: float = 10.0, max_addresses: int = 1024):
        self.cooldown = cooldown
        self.max_addresses = max_addresses
        self._last: dict[object, float] = {}

    def refuse(self, address: object, received: int, reason: int, now: float) -> bytes | None:
        message = refusal_message(reason)
        if received < len(message):
            return None
        last = self._last.get(address)
        if last is not None and now - last < self.cooldown:
            return None
        if len(self._last) >= self.max_addresses:
            self._last = {a: t for a, t in self._last.items() if now - t < self.cooldown}
            if len(self._last) >= self.max_addresses:
                return None  # under a flood, stay silent rather than grow
        self._last[address] = now
        return message
