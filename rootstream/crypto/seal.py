"""Sealing and opening datagram payloads: ChaCha20-Poly1305 with a replay window.

A sealed payload is::

    counter (8 bytes, big-endian) || ChaCha20-Poly1305-IETF ciphertext || tag (16)

The 12-byte nonce is ``direction (4 bytes, big-endian) || counter (8 bytes)``.
Each direction already has its own key (from the handshake); putting the
direction in the nonce as well means a key mix-up in a caller can never make
both sides encrypt under the same (key, nonce).  The associated data is the
16-byte ROOT header with its checksum field (bytes 14-15) zeroed -- exactly the
bytes the CRC covers before the checksum is known -- so the sender seals before
computing the CRC and the receiver verifies after checking it.

ChaCha20-Poly1305-IETF rather than XChaCha20: the nonce is a counter that never
repeats under a key, so the extended nonce buys nothing and costs an HChaCha20
call per packet.

The per-packet AEAD is ``cryptography``'s (OpenSSL, with its SIMD ChaCha20),
not PyNaCl's: the same construction, byte for byte, at about a third of the
cost per 1360-byte datagram (PyNaCl's wrapper allocates through cffi and its
bundled libsodium lacks the vectorised ChaCha20).  PyNaCl still does the
handshake, identities and pairing, where a call happens once per session.
"""

from __future__ import annotations

import threading

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from rootstream.errors import CryptoError
from rootstream.protocol.header import CHECKSUM_OFFSET, HEADER_SIZE

COUNTER_SIZE = 8
TAG_SIZE = 16
KEY_SIZE = 32
SEAL_OVERHEAD = COUNTER_SIZE + TAG_SIZE

INITIATOR_TO_RESPONDER = 0  # client -> host
RESPONDER_TO_INITIATOR = 1  # host -> client

_MAX_COUNTER = (1 << 64) - 1
_CHECKSUM_ZEROED = b"\x00\x00"


class PacketRejected(CryptoError):
    """A sealed payload was dropped; ``reason`` is a short name for a drop counter."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


# One fixed message per cause, so a receive loop can count drops by reason.
TRUNCATED = ("truncated", "sealed payload is truncated")
FORGED = ("forged", "sealed payload failed authentication")
REPLAYED = ("replayed", "sealed payload is a replay")
TOO_OLD = ("too_old", "sealed payload is older than the replay window")


def _associated_data(header: bytes) -> bytes:
    if len(header) != HEADER_SIZE:
        raise CryptoError("packet header must be 16 bytes")
    if header[CHECKSUM_OFFSET:] == _CHECKSUM_ZEROED:
        return header  # already the pre-image, as the transport builds it
    return bytes(header[:CHECKSUM_OFFSET]) + _CHECKSUM_ZEROED


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise CryptoError("session key must be 32 bytes")
    return key


def _check_direction(direction: int) -> bytes:
    if direction not in (INITIATOR_TO_RESPONDER, RESPONDER_TO_INITIATOR):
        raise CryptoError("direction must be 0 (client to host) or 1 (host to client)")
    return direction.to_bytes(4, "big")


class Sealer:
    """Seals payloads for one direction of a session.

    Thread-safe: the video sender and the control sender may share one Sealer.
    Only the counter reservation is under the lock; encryption runs outside it.
    The AEAD call keeps the GIL (about 2 us for a full datagram, less than a
    GIL hand-over would cost), so two senders interleave packet by packet
    rather than seal in parallel.  Their packets may leave slightly out of
    counter order, which the receiver's replay window accepts.
    """

    def __init__(self, key: bytes, direction: int = INITIATOR_TO_RESPONDER, *, counter: int = 0):
        self._aead = ChaCha20Poly1305(_check_key(key))  # key schedule once, not per packet
        self._nonce_prefix = _check_direction(direction)
        if not 0 <= counter <= _MAX_COUNTER:
            raise CryptoError("packet counter out of range")
        self._next = counter
        self._lock = threading.Lock()

    @property
    def next_counter(self) -> int:
        return self._next

    def seal(self, header: bytes, payload: bytes | memoryview) -> bytes:
        """Return ``counter || ciphertext || tag`` for ``payload`` under ``header``."""
        counter_bytes, box = self.seal_parts(header, payload)
        return counter_bytes + box

    def seal_parts(self, header: bytes, payload: bytes | memoryview) -> tuple[bytes, bytes]:
        """The sealed payload of ``seal`` as its two parts, ``(counter, ciphertext || tag)``,
        so a caller framing a datagram copies them once, into the datagram."""
        ad = _associated_data(header)
        with self._lock:
            counter = self._next
            if counter > _MAX_COUNTER:
                raise CryptoError(
                    "session key has sealed 2^64 packets", hint="start a new session"
                )
            self._next = counter + 1
        counter_bytes = counter.to_bytes(COUNTER_SIZE, "big")
        return counter_bytes, self._aead.encrypt(self._nonce_prefix + counter_bytes, payload, ad)


class Opener:
    """Opens payloads for one direction, rejecting forgeries and replays.

    The replay window is a bitmap of the last ``window`` counters below the
    highest one authenticated so far: packets reordered inside the window are
    accepted once, repeats and anything older are rejected.  The window only
    moves after a packet authenticates, so a forged packet with a huge counter
    cannot push genuine traffic out of it.

    Thread-safe.  The window is one ``(top, bitmap)`` tuple, replaced whole
    under the lock, so the cheap check before decryption reads a consistent
    snapshot without taking the lock; the window only ever moves forward, so
    a stale snapshot never rejects a packet the current window would accept.
    """

    def __init__(self, key: bytes, direction: int = INITIATOR_TO_RESPONDER, *, window: int = 1024):
        self._aead = ChaCha20Poly1305(_check_key(key))
        self._nonce_prefix = _check_direction(direction)
        if window < 1:
            raise CryptoError("replay window must hold at least one packet")
        self.window = window
        self._mask = (1 << window) - 1
        # top: highest authenticated counter, -1 before the first packet;
        # bitmap bit i set: counter (top - i) has been accepted.
        self._state = (-1, 0)
        self._lock = threading.Lock()

    @property
    def highest_counter(self) -> int:
        return self._state[0]

    def _check_fresh(self, counter: int, state: tuple[int, int]) -> None:
        top, bitmap = state
        if counter <= top:
            age = top - counter
            if age >= self.window:
                raise PacketRejected(*TOO_OLD)
            if (bitmap >> age) & 1:
                raise PacketRejected(*REPLAYED)

    def open(self, header: bytes, box: bytes | memoryview) -> bytes:
        """Return the payload inside ``box``, or raise PacketRejected.

        ``box`` may be a memoryview into the received datagram: it is read in
        place, never copied."""
        ad = _associated_data(header)
        if len(box) < SEAL_OVERHEAD:
            raise PacketRejected(*TRUNCATED)
        nonce = self._nonce_prefix + box[:COUNTER_SIZE]
        counter = int.from_bytes(nonce[4:], "big")
        # Cheap rejection first: a replay costs no decryption.
        self._check_fresh(counter, self._state)
        try:
            payload = self._aead.decrypt(nonce, box[COUNTER_SIZE:], ad)
        except InvalidTag:
            raise PacketRejected(*FORGED) from None
        with self._lock:
            top, bitmap = state = self._state
            self._check_fresh(counter, state)  # another thread may have accepted it meanwhile
            if counter > top:
                shift = counter - top
                bitmap = ((bitmap << shift) | 1) & self._mask if shift < self.window else 1
                self._state = (counter, bitmap)
            else:
                self._state = (top, bitmap | 1 << (top - counter))
        return payload
