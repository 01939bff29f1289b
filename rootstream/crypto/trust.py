"""The trust store: the peers this machine has paired with, kept as 0600 JSON.

A host consults it on every handshake (``is_trusted``); a client looks up the
host's key in it before connecting.  Writes re-read the file first so a
`rootstream pair` in one process and a running host in another do not undo
each other's changes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from rootstream.crypto._files import check_private_file, config_dir, write_private_file
from rootstream.crypto.identity import KEY_SIZE, fingerprint, normalise_fingerprint
from rootstream.errors import CryptoError, PairingError

TRUST_FILE = "trusted_peers.json"
MAX_NAME_BYTES = 64
_FORMAT_VERSION = 1


def check_peer_name(name: str) -> str:
    """A peer name is shown to the user: 1..64 UTF-8 bytes, no control characters."""
    if not isinstance(name, str) or not name or len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise PairingError("peer name is not valid", hint="use 1 to 64 printable characters")
    if any(not ch.isprintable() for ch in name):
        raise PairingError("peer name is not valid", hint="use 1 to 64 printable characters")
    return name


@dataclass(frozen=True)
class TrustedPeer:
    name: str
    public_key: bytes
    paired_at: float  # Unix time, seconds
    # For Wake-on-LAN (rootstream.net.wake): the host's MAC and the address it
    # had when last seen, "" when unknown.  Not secrets; absent from old files.
    mac: str = ""
    address: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def to_json(self) -> dict:
        doc = {
            "name": self.name,
            "public_key": self.public_key.hex(),
            "fingerprint": self.fingerprint,
            "paired_at": datetime.fromtimestamp(self.paired_at, timezone.utc).isoformat(),
        }
        doc.update({k: v for k, v in (("mac", self.mac), ("address", self.address)) if v})
        return doc

    @classmethod
    def from_json(cls, item: dict) -> TrustedPeer:
        try:
            key = bytes.fromhex(item["public_key"])
            peer = cls(
                name=check_peer_name(item["name"]),
                public_key=key,
                paired_at=datetime.fromisoformat(item["paired_at"]).timestamp(),
                mac=str(item.get("mac", "")), address=str(item.get("address", "")),
            )
        except (KeyError, TypeError, ValueError, PairingError) as exc:
            raise CryptoError("the trust store is corrupt") from exc
        # The stored fingerprint is for humans reading the file; a mismatch means
        # someone edited the key by hand and we should not guess which half is right.
        if len(key) != KEY_SIZE or item.get("fingerprint") != peer.fingerprint:
            raise CryptoError("the trust store is corrupt")
        return peer


class TrustStore:
    """Paired peers, persisted to ``trusted_peers.json`` (mode 0600)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._peers: list[TrustedPeer] = []
        self.reload()

    @classmethod
    def open(cls, directory: Path | None = None) -> TrustStore:
        return cls(Path(directory or config_dir()) / TRUST_FILE)

    def reload(self) -> None:
        if not self.path.exists():
            self._peers = []
            return
        try:
            check_private_file(self.path)
            doc = json.loads(self.path.read_bytes())
        except (OSError, ValueError) as exc:
            raise CryptoError("the trust store is corrupt", details=[str(self.path)]) from exc
        if not isinstance(doc, dict) or doc.get("version") != _FORMAT_VERSION:
            raise CryptoError("the trust store is corrupt", details=[str(self.path)])
        peers = doc.get("peers")
        if not isinstance(peers, list):
            raise CryptoError("the trust store is corrupt", details=[str(self.path)])
        self._peers = [TrustedPeer.from_json(item) for item in peers]

    def _save(self) -> None:
        doc = {"version": _FORMAT_VERSION, "peers": [p.to_json() for p in self._peers]}
        write_private_file(self.path, json.dumps(doc, indent=2).encode("utf-8") + b"\n")

    def list(self) -> list[TrustedPeer]:
        return list(self._peers)

    def get(self, public_key: bytes) -> TrustedPeer | None:
        for peer in self._peers:
            if peer.public_key == public_key:
                return peer
        return None

    def is_trusted(self, public_key: bytes) -> bool:
        return self.get(public_key) is not None

    def find(self, name_or_fingerprint: str) -> TrustedPeer | None:
        """The one peer with this name or fingerprint; an ambiguous name is an error."""
        matches = self._matching(name_or_fingerprint)
        if len(matches) > 1:
            raise PairingError(
                "several paired peers have this name",
                hint="use the fingerprint instead (rootstream pair --list)",
                details=[f"{p.name} {p.fingerprint}" for p in matches],
            )
        return matches[0] if matches else None

    def add(self, name: str, public_key: bytes, paired_at: float | None = None) -> TrustedPeer:
        """Trust ``public_key`` under ``name``; re-pairing a known key replaces its entry."""
        if len(public_key) != KEY_SIZE:
            raise CryptoError("public key must be 32 bytes")
        when = time.time() if paired_at is None else paired_at
        peer = TrustedPeer(check_peer_name(name), bytes(public_key), when)
        self.reload()
        self._peers = [p for p in self._peers if p.public_key != peer.public_key] + [peer]
        self._save()
        return peer

    def remember_location(self, public_key: bytes, mac: str, address: str) -> TrustedPeer:
        """Keep where a paired peer was last seen, so it can be woken later."""
        self.reload()
        peer = self.get(public_key)
        if peer is None:
            raise PairingError("no paired peer has this key")
        moved = replace(peer, mac=mac or peer.mac, address=address or peer.address)
        self._peers = [moved if p is peer else p for p in self._peers]
        self._save()
        return moved

    def forget(self, name_or_fingerprint: str) -> TrustedPeer:
        """Remove one peer by name or fingerprint and return it."""
        self.reload()
        peer = self.find(name_or_fingerprint)
        if peer is None:
            raise PairingError(
                "no paired peer has this name or fingerprint",
                hint="list paired peers with: rootstream pair --list",
            )
        self._peers = [p for p in self._peers if p.public_key != peer.public_key]
        self._save()
        return peer

    def _matching(self, name_or_fingerprint: str) -> list[TrustedPeer]:
        wanted = normalise_fingerprint(name_or_fingerprint)
        by_fp = [p for p in self._peers if p.fingerprint == wanted]
        return by_fp or [p for p in self._peers if p.name == name_or_fingerprint]
