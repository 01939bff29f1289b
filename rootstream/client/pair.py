"""Pair this client with a host over the network (`rootstream pair HOST`).

The host must be running `rootstream host --pair`, which shows the code.
The exchange is the CPace PAKE of rootstream.crypto.pairing carried in
unsealed CONTROL messages; afterwards each side keeps the other's public key.
The socket loop lives with the client, not in rootstream.crypto: crypto
knows keys and messages, never sockets.
"""

from __future__ import annotations

import time
from pathlib import Path

from rootstream.crypto.client_keys import host_entry_name
from rootstream.crypto.identity import Identity
from rootstream.crypto.pairing import PairingClient, PairingFailed
from rootstream.crypto.trust import TrustedPeer, TrustStore
from rootstream.errors import NetworkError, PairingError
from rootstream.net.udp import UdpTransport, is_unsealed_crypto
from rootstream.protocol import PacketType

RESEND_S = 0.5


def pair_with_host(address: tuple[str, int], code: str, label: str, *,
                   config_dir: str | None = None, name: str | None = None,
                   timeout: float = 10.0) -> TrustedPeer:
    """Run the exchange; store and return the host's entry.  Raises PairingError."""
    directory = Path(config_dir) if config_dir else None
    identity = Identity.load_or_create(directory)
    trust = TrustStore.open(directory)
    exchange = PairingClient(identity, code, name=name)
    deadline = time.monotonic() + timeout
    outgoing = exchange.start()
    with UdpTransport(("::" if ":" in address[0] else "0.0.0.0", 0)) as transport:
        next_send = 0.0
        while exchange.result is None:
            now = time.monotonic()
            if now > deadline:
                raise NetworkError(
                    f"no pairing answer from {address[0]}:{address[1]} within {timeout:g} s",
                    hint="start the host with `rootstream host --pair` and check the port")
            if now >= next_send:
                transport.send(PacketType.CONTROL, outgoing, address, seal=False)
                next_send = now + RESEND_S
            received = transport.receive(timeout=0.1)
            if received is None or received.address[:2] != address[:2]:
                continue
            if not is_unsealed_crypto(received.header, received.payload):
                continue
            try:
                reply = exchange.receive(bytes(received.payload))
            except PairingFailed as exc:
                if exc.reply:
                    transport.send(PacketType.CONTROL, exc.reply, address, seal=False)
                raise
            except PairingError:
                continue  # a stray or duplicate message: the exchange goes on
            if reply is not None:
                outgoing = reply
                transport.send(PacketType.CONTROL, outgoing, address, seal=False)
                next_send = time.monotonic() + RESEND_S
    result = exchange.result
    return trust.add(host_entry_name(label), result.public_key)


def this_machine() -> Identity:
    return Identity.load_or_create(None)
