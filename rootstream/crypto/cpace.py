"""CPace, the balanced PAKE of draft-irtf-cfrg-cpace, over the prime-order
subgroup of edwards25519, using only what libsodium (via PyNaCl) exposes.

Why CPace: it is the CFRG's recommended balanced PAKE, it needs no trusted
setup (SPAKE2's M and N constants must have unknown discrete logs; CPace
derives its generator from the password itself), and it is one hash-to-curve
plus two scalar multiplications per side.  The draft's preferred group,
ristretto255, is not reachable through PyNaCl 1.6 (libsodium has it, the
bindings do not), so this uses the group libsodium does expose:

* generator  g = from_uniform(SHA-512(lv(DSI) || lv(code) || lv(CI) || lv(sid))[:32])
  ``crypto_core_ed25519_from_uniform`` is Elligator 2 followed by cofactor
  clearing, so g lies in the prime-order subgroup and nobody knows its
  discrete log to any other point -- the property CPace needs;
* Y = y * g with a fresh random scalar y (``crypto_scalarmult_ed25519_noclamp``);
* K = y * Y_peer; libsodium rejects a Y_peer that is not canonical, not on the
  curve, of small order or outside the prime-order subgroup, and rejects an
  identity result, which are the draft's point checks;
* ISK = SHA-512(lv(DSI || "_ISK") || lv(sid) || lv(K) || lv(Ya) || lv(Yb)).

Offline guessing: a transcript holds Ya = ya*g(code) and Yb = yb*g(code).
Testing a candidate code c' against it would need ya*yb*g(c'), i.e. solving
computational Diffie-Hellman for the unknown generator g(c') -- so an
eavesdropper learns nothing, and an active attacker, who must commit to one
code when choosing Ya, tests exactly one code per online attempt.
"""

from __future__ import annotations

import hashlib
import os

import nacl.bindings
import nacl.exceptions

from rootstream.errors import PairingError

DSI = b"rootstream-CPace-edwards25519-SHA512"
CHANNEL_ID = b"rootstream pairing v1"
ROOM_CHANNEL_ID = b"rootstream room v1"  # room codes (rootstream.crypto.room): never a pairing
POINT_SIZE = nacl.bindings.crypto_core_ed25519_BYTES
SCALAR_SIZE = nacl.bindings.crypto_core_ed25519_SCALARBYTES
SID_SIZE = 16
assert POINT_SIZE == 32 and SCALAR_SIZE == 32

INVALID_POINT = "pairing message carries an invalid curve point"


def _lv(data: bytes) -> bytes:
    """Length-value encoding: no two different field lists hash the same bytes."""
    return len(data).to_bytes(2, "big") + data


def _check_bindings() -> None:
    # from_uniform arrived in PyNaCl 1.6.0, and a libsodium built "minimal"
    # has no ed25519 core at all: say so instead of an AttributeError.
    if not (getattr(nacl.bindings, "has_crypto_core_ed25519", False)
            and hasattr(nacl.bindings, "crypto_core_ed25519_from_uniform")):
        raise PairingError(
            "this PyNaCl cannot pair: it lacks the edwards25519 functions",
            hint="pip install 'pynacl>=1.6'",
        )


def generator(code: bytes, sid: bytes, channel: bytes = CHANNEL_ID) -> bytes:
    """The password-derived generator g(code, sid) for ``channel`` (the draft's CI)."""
    _check_bindings()
    digest = hashlib.sha512(_lv(DSI) + _lv(code) + _lv(channel) + _lv(sid)).digest()
    return nacl.bindings.crypto_core_ed25519_from_uniform(digest[:32])


def random_scalar() -> bytes:
    """A uniform non-zero scalar modulo the group order."""
    while True:
        scalar = nacl.bindings.crypto_core_ed25519_scalar_reduce(os.urandom(64))
        if any(scalar):
            return scalar


def public_share(scalar: bytes, gen: bytes) -> bytes:
    return nacl.bindings.crypto_scalarmult_ed25519_noclamp(scalar, gen)


def shared_point(scalar: bytes, peer_share: bytes) -> bytes:
    try:
        return nacl.bindings.crypto_scalarmult_ed25519_noclamp(scalar, peer_share)
    except (nacl.exceptions.RuntimeError, nacl.exceptions.TypeError) as exc:
        raise PairingError(INVALID_POINT) from exc


def intermediate_session_key(sid: bytes, k: bytes, share_client: bytes, share_host: bytes) -> bytes:
    """ISK, with the initiator-responder transcript order (client first)."""
    return hashlib.sha512(
        _lv(DSI + b"_ISK") + _lv(sid) + _lv(k) + _lv(share_client) + _lv(share_host)
    ).digest()
