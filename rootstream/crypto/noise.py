"""Noise_IK_25519_ChaChaPoly_SHA256, exactly as the Noise Protocol Framework
(revision 34) specifies it, for the two messages of the IK pattern::

    <- s
    ...
    -> e, es, s, ss
    <- e, ee, se

Following the spec to the letter (rather than inventing a handshake) means the
construction is the one that has been analysed (Noise Explorer, WireGuard uses
its IKpsk2 sibling) and that tests can pin it against the public cacophony
vectors.  Primitives: X25519 and ChaCha20-Poly1305-IETF from libsodium
(PyNaCl), SHA-256/HMAC from the standard library.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import os

import nacl.bindings
import nacl.exceptions

from rootstream.crypto.identity import KEY_SIZE, Identity, x25519
from rootstream.errors import CryptoError

PROTOCOL_NAME = b"Noise_IK_25519_ChaChaPoly_SHA256"
HASH_LEN = 32
DH_LEN = KEY_SIZE
TAG_LEN = 16
MSG1_OVERHEAD = DH_LEN + (DH_LEN + TAG_LEN) + TAG_LEN  # e, encrypted s, payload tag
MSG2_OVERHEAD = DH_LEN + TAG_LEN  # e, payload tag

HANDSHAKE_FAILED = "handshake message failed authentication"


def _hkdf2(chaining_key: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    temp = hmac.new(chaining_key, ikm, hashlib.sha256).digest()
    out1 = hmac.new(temp, b"\x01", hashlib.sha256).digest()
    out2 = hmac.new(temp, out1 + b"\x02", hashlib.sha256).digest()
    return out1, out2


def _nonce(n: int) -> bytes:
    return b"\x00\x00\x00\x00" + n.to_bytes(8, "little")


class _SymmetricState:
    def __init__(self, prologue: bytes):
        # The name is exactly HASHLEN bytes, so h starts as the name itself.
        assert len(PROTOCOL_NAME) == HASH_LEN
        self.h = PROTOCOL_NAME
        self.ck = PROTOCOL_NAME
        self.k: bytes | None = None
        self.n = 0
        self.mix_hash(prologue)

    def mix_hash(self, data: bytes) -> None:
        self.h = hashlib.sha256(self.h + data).digest()

    def mix_key(self, ikm: bytes) -> None:
        self.ck, self.k = _hkdf2(self.ck, ikm)
        self.n = 0

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        assert self.k is not None  # every IK payload is sent after a MixKey
        ciphertext = nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt(
            plaintext, self.h, _nonce(self.n), self.k
        )
        self.n += 1
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        assert self.k is not None
        try:
            plaintext = nacl.bindings.crypto_aead_chacha20poly1305_ietf_decrypt(
                ciphertext, self.h, _nonce(self.n), self.k
            )
        except nacl.exceptions.CryptoError:
            raise CryptoError(HANDSHAKE_FAILED) from None
        self.n += 1
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[bytes, bytes]:
        return _hkdf2(self.ck, b"")


class _Ephemeral:
    """An ephemeral X25519 key; ``secret`` is fixed only by test vectors."""

    def __init__(self, secret: bytes | None = None):
        self.secret = secret if secret is not None else os.urandom(KEY_SIZE)
        self.public = nacl.bindings.crypto_scalarmult_base(self.secret)


class NoiseIK:
    """One side of a Noise IK handshake.

    The initiator must know the responder's static key (``remote_static``);
    the responder learns the initiator's from message 1.  After both messages,
    ``split()`` gives (initiator->responder key, responder->initiator key) and
    ``handshake_hash`` is a value both sides share and no one else can predict.
    """

    def __init__(
        self,
        *,
        initiator: bool,
        static: Identity,
        prologue: bytes,
        remote_static: bytes | None = None,
        ephemeral_secret: bytes | None = None,
    ):
        if initiator and (remote_static is None or len(remote_static) != KEY_SIZE):
            raise CryptoError("the initiator needs the responder's 32-byte public key")
        self.initiator = initiator
        self.static = static
        self.remote_static = remote_static
        self.remote_ephemeral: bytes | None = None
        self._e = _Ephemeral(ephemeral_secret)
        self._ss = _SymmetricState(prologue)
        # Pre-message "<- s": both sides hash the responder's static key.
        self._ss.mix_hash(remote_static if initiator else static.public_key)
        self._step = 0

    @property
    def handshake_hash(self) -> bytes:
        return self._ss.h

    def _advance(self, expected: int, initiator_step: bool) -> None:
        if self._step != expected or self.initiator is not initiator_step:
            raise CryptoError("handshake message out of order")
        self._step += 1

    # -> e, es, s, ss
    def write_message_1(self, payload: bytes) -> bytes:
        self._advance(0, True)
        ss = self._ss
        ss.mix_hash(self._e.public)
        ss.mix_key(x25519(self._e.secret, self.remote_static))
        enc_static = ss.encrypt_and_hash(self.static.public_key)
        ss.mix_key(self.static.dh(self.remote_static))
        return self._e.public + enc_static + ss.encrypt_and_hash(payload)

    def read_message_1(self, message: bytes) -> bytes:
        self._advance(0, False)
        if len(message) < MSG1_OVERHEAD:
            raise CryptoError("handshake message is truncated")
        ss = self._ss
        re = message[:DH_LEN]
        self.remote_ephemeral = re
        ss.mix_hash(re)
        ss.mix_key(self.static.dh(re))
        rs = ss.decrypt_and_hash(message[DH_LEN : 2 * DH_LEN + TAG_LEN])
        self.remote_static = rs
        ss.mix_key(self.static.dh(rs))
        return ss.decrypt_and_hash(message[2 * DH_LEN + TAG_LEN :])

    # <- e, ee, se
    def write_message_2(self, payload: bytes) -> bytes:
        self._advance(1, False)
        ss = self._ss
        ss.mix_hash(self._e.public)
        ss.mix_key(x25519(self._e.secret, self.remote_ephemeral))
        ss.mix_key(x25519(self._e.secret, self.remote_static))
        return self._e.public + ss.encrypt_and_hash(payload)

    def read_message_2(self, message: bytes) -> bytes:
        if self._step != 1 or not self.initiator:
            raise CryptoError("handshake message out of order")
        if len(message) < MSG2_OVERHEAD:
            raise CryptoError("handshake message is truncated")
        # Work on a copy and commit only if the message authenticates, so a
        # forged reply injected by a third party cannot spoil the handshake
        # before the genuine one arrives.
        ss = copy.copy(self._ss)
        re = message[:DH_LEN]
        ss.mix_hash(re)
        ss.mix_key(x25519(self._e.secret, re))
        ss.mix_key(self.static.dh(re))
        payload = ss.decrypt_and_hash(message[DH_LEN:])
        self._ss, self.remote_ephemeral, self._step = ss, re, 2
        return payload

    def split(self) -> tuple[bytes, bytes]:
        if self._step != 2:
            raise CryptoError("handshake is not finished")
        return self._ss.split()
