"""The client's side of session keys: which host key to expect, and handshakes.

A client names a host the way the user typed it (`rootstream pair gamebox`
then `rootstream connect gamebox`); pairing stored the host's key under that
name.  A host on this machine, run by the same user, holds the same identity,
so a loopback connection with no stored entry expects this machine's own key
(see rootstream.crypto.gate).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from rootstream.crypto.handshake import HandshakeInitiator
from rootstream.crypto.identity import Identity
from rootstream.crypto.trust import TrustStore
from rootstream.errors import PairingError


@dataclass
class ClientKeys:
    identity: Identity
    host_public_key: bytes
    host_label: str
    assumed_self: bool = False  # no entry: we guessed the host is this machine's own

    @classmethod
    def load(cls, config_dir: str | None, label: str, address: str) -> ClientKeys:
        directory = Path(config_dir) if config_dir else None
        identity = Identity.load_or_create(directory)
        peer = TrustStore.open(directory).find(host_entry_name(label))
        if peer is not None:
            return cls(identity, peer.public_key, label)
        if _is_loopback(address):
            return cls(identity, identity.public_key, label, assumed_self=True)
        raise cls.not_paired(label)

    @staticmethod
    def not_paired(label: str) -> PairingError:
        return PairingError(
            f"this client is not paired with {label}",
            hint=f"run `rootstream host --pair` there, then `rootstream pair {label}` here "
                 "and type the code it shows (or use --insecure to measure without encryption)")

    def initiator(self) -> HandshakeInitiator:
        """A fresh handshake attempt (new ephemeral key and timestamp)."""
        return HandshakeInitiator(self.identity, self.host_public_key)


def host_entry_name(label: str) -> str:
    """The trust-store name a paired host is kept under."""
    return f"host {label}"[:64]


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
