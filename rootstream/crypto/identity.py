"""Long-term identities: one X25519 key pair per machine, and its fingerprint.

Why X25519 alone (no Ed25519 signing key): the session handshake is Noise IK,
which authenticates both sides by Diffie-Hellman with their static keys, and
pairing only needs to *transfer* a public key under a PAKE.  Nothing is ever
signed, so a second key type would be one more secret to store and nothing
gained.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import nacl.bindings
import nacl.exceptions

from rootstream.crypto._files import check_private_file, config_dir, write_private_file
from rootstream.errors import CryptoError

KEY_SIZE = 32
IDENTITY_FILE = "identity.key"
_FILE_TAG = b"rootstream-identity-v1 "
_FINGERPRINT_PERSON = b"rootstream-fp"


def fingerprint(public_key: bytes) -> str:
    """A short, human-checkable name for a public key: ``ABCD-EFGH-IJKL-MNOP``.

    80 bits of BLAKE2b in base32 (no 0/1/8/9 look-alikes): enough that forging
    a key with a chosen fingerprint costs 2^80 work, short enough to read out.
    """
    if len(public_key) != KEY_SIZE:
        raise CryptoError("public key must be 32 bytes")
    digest = hashlib.blake2b(public_key, digest_size=10, person=_FINGERPRINT_PERSON).digest()
    text = base64.b32encode(digest).decode("ascii")
    return "-".join(text[i : i + 4] for i in range(0, 16, 4))


def normalise_fingerprint(text: str) -> str:
    """Accept a fingerprint typed in any case, with or without separators."""
    letters = "".join(ch for ch in text.upper() if ch.isalnum())
    return "-".join(letters[i : i + 4] for i in range(0, len(letters), 4))


def x25519(secret_key: bytes, public_key: bytes) -> bytes:
    """X25519 that refuses low-order peer keys (libsodium returns an error for them)."""
    if len(public_key) != KEY_SIZE:
        raise CryptoError("public key must be 32 bytes")
    try:
        return nacl.bindings.crypto_scalarmult(secret_key, public_key)
    except nacl.exceptions.RuntimeError as exc:
        raise CryptoError("peer public key is invalid") from exc


class Identity:
    """This machine's long-term key pair.  The secret never leaves the object."""

    __slots__ = ("_secret", "public_key")

    def __init__(self, secret_key: bytes):
        if len(secret_key) != KEY_SIZE:
            raise CryptoError("identity secret key must be 32 bytes")
        self._secret = bytes(secret_key)
        self.public_key = nacl.bindings.crypto_scalarmult_base(self._secret)

    @classmethod
    def generate(cls) -> Identity:
        return cls(os.urandom(KEY_SIZE))

    @classmethod
    def load_or_create(cls, directory: Path | None = None) -> Identity:
        """Load ``identity.key`` from ``directory`` (default: the config dir),
        creating it with a fresh key on first run."""
        path = Path(directory or config_dir()) / IDENTITY_FILE
        if not path.exists():
            fresh = cls.generate()
            line = _FILE_TAG + base64.b64encode(fresh._secret) + b"\n"
            if write_private_file(path, line, exclusive=True):
                return fresh
            # Another process created it first: fall through and share theirs.
        return cls._load(path)

    @classmethod
    def _load(cls, path: Path) -> Identity:
        try:
            check_private_file(path)
            data = path.read_bytes()
        except OSError as exc:
            raise CryptoError(
                "cannot read the rootstream identity", details=[f"{path}: {exc.strerror or exc}"]
            ) from exc
        if not data.startswith(_FILE_TAG):
            raise CryptoError("the rootstream identity file is corrupt", details=[str(path)])
        try:
            secret = base64.b64decode(data[len(_FILE_TAG) :].strip(), validate=True)
        except ValueError as exc:
            raise CryptoError(
                "the rootstream identity file is corrupt", details=[str(path)]
            ) from exc
        if len(secret) != KEY_SIZE:
            raise CryptoError("the rootstream identity file is corrupt", details=[str(path)])
        return cls(secret)

    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def dh(self, peer_public_key: bytes) -> bytes:
        return x25519(self._secret, peer_public_key)

    def __repr__(self) -> str:
        return f"Identity({self.fingerprint()})"
