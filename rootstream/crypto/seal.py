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
"""

from __future__ import annotations

import threading

import nacl.bindings
import nacl.exceptions

from rootstream.errors import CryptoError

HEADER_SIZE = 16
COUNTER_SIZE = 8
TAG_SIZE = nacl.bindings.crypto_aead_chacha20poly1305_ietf_ABYTES
KEY_SIZE = nacl.bindings.crypto_aead_chacha20poly1305_ietf_KEYBYTES
SEAL_OVERHEAD = COUNTER_SIZE + TAG_SIZE
assert SEAL_OVERHEAD == 24 and KEY_SIZE == 32

INITIATOR_TO_RESPONDER = 0  # client -> host
RESPONDER_TO_INITIATOR = 1  # host -> client

_MAX_COUNTER = (1 << 64) - 1
_CHECKSUM_ZEROED = b"\x00\x00"
_encrypt = nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt
_decrypt = nacl.bindings.crypto_aead_chacha20poly1305_ietf_decrypt


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
    return header[:14] + _CHECKSUM_ZEROED


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
    Only the counter reservation is under the lock; encryption runs outside it
    (and libsodium releases the GIL), so two senders seal in parallel.  Their
    packets may leave slightly out of counter order, which the receiver's
    replay window accepts.
    """

    def __init__(self, key: bytes, direction: int = INITIATOR_TO_RESPONDER, *, counter: int = 0):
        self._key = _check_key(key)
        self._nonce_prefix = _check_direction(direction)
        if not 0 <= counter <= _MAX_COUNTER:
            raise CryptoError("packet counter out of range")
        self._next = counter
        self._lock = threading.Lock()

    @property
    def next_counter(self) -> int:
        return self._next

    def seal(self, header: bytes, payload: bytes) -> bytes:
        """Return ``counter || ciphertext || tag`` for ``payload`` under ``header``."""
        ad = _associated_data(header)
        with self._lock:
            counter = self._next
            if counter > _MAX_COUNTER:
                raise CryptoError(
                    "session key has sealed 2^64 packets", hint="start a new session"
                )
            self._next = counter + 1
        counter_bytes = counter.to_bytes(COUNTER_SIZE, "big")
        return counter_bytes + _encrypt(bytes(payload), ad, self._nonce_prefix + counter_bytes,
                                        self._key)


class Opener:
    """Opens payloads for one direction, rejecting forgeries and replays.

    The replay window is a bitmap of the last ``window`` counters below the
    highest one authenticated so far: packets reordered inside the window are
    accepted once, repeats and anything older are rejected.  The window only
    moves after a packet authenticates, so a forged packet with a huge counter
    cannot push genuine traffic out of it.
    """

    def __init__(self, key: bytes, direction: int = INITIATOR_TO_RESPONDER, *, window: int = 1024):
        self._key = _check_key(key)
        self._nonce_prefix = _check_direction(direction)
        if window < 1:
            raise CryptoError("replay window must hold at least one packet")
        self.window = window
        self._mask = (1 << window) - 1
        self._top = -1  # highest authenticated counter; -1 before the first packet
        self._bitmap = 0  # bit i set: counter (top - i) has been accepted
        self._lock = threading.Lock()

    @property
    def highest_counter(self) -> int:
        return self._top

    def _check_fresh(self, counter: int) -> None:
        if counter <= self._top:
            age = self._top - counter
            if age >= self.window:
                raise PacketRejected(*TOO_OLD)
            if (self._bitmap >> age) & 1:
                raise PacketRejected(*REPLAYED)

    def open(self, header: bytes, box: bytes) -> bytes:
        """Return the payload inside ``box``, or raise PacketRejected."""
        ad = _associated_data(header)
        if len(box) < SEAL_OVERHEAD:
            raise PacketRejected(*TRUNCATED)
        counter_bytes = bytes(box[:COUNTER_SIZE])
        counter = int.from_bytes(counter_bytes, "big")
        # Cheap rejection first: a replay costs no decryption.
        with self._lock:
            self._check_fresh(counter)
        try:
            payload = _decrypt(bytes(box[COUNTER_SIZE:]), ad, self._nonce_prefix + counter_bytes,
                               self._key)
        except nacl.exceptions.CryptoError:
            raise PacketRejected(*FORGED) from None
        with self._lock:
            self._check_fresh(counter)  # another thread may have accepted it meanwhile
            if counter > self._top:
                shift = counter - self._top
                if shift < self.window:
                    self._bitmap = ((self._bitmap << shift) | 1) & self._mask
                else:
                    self._bitmap = 1
                self._top = counter
            else:
                self._bitmap |= 1 << (self._top - counter)
        return payload
