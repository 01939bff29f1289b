"""rootstream.crypto: identities, trust store, pairing, session handshake, sealing.

Everything here is sans-IO: bytes in, bytes out, time passed in.  The host and
client loops carry the messages; docs/SECURITY.md is the byte-level spec.
"""

from rootstream.crypto.handshake import (
    HandshakeInitiator,
    HandshakeRefused,
    HandshakeResponder,
    Refuser,
    ReplayGuard,
    SessionKeys,
    refusal_message,
)
from rootstream.crypto.identity import Identity, fingerprint
from rootstream.crypto.pairing import (
    PairingClient,
    PairingFailed,
    PairingHost,
    PairingResult,
    format_code,
    new_pairing_code,
    normalise_code,
)
from rootstream.crypto.seal import SEAL_OVERHEAD, Opener, PacketRejected, Sealer
from rootstream.crypto.trust import TrustedPeer, TrustStore

__all__ = [
    "SEAL_OVERHEAD",
    "HandshakeInitiator",
    "HandshakeRefused",
    "HandshakeResponder",
    "Identity",
    "Opener",
    "PacketRejected",
    "PairingClient",
    "PairingFailed",
    "PairingHost",
    "PairingResult",
    "Refuser",
    "ReplayGuard",
    "Sealer",
    "SessionKeys",
    "TrustStore",
    "TrustedPeer",
    "fingerprint",
    "format_code",
    "new_pairing_code",
    "normalise_code",
    "refusal_message",
]
