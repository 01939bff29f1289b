"""Pair this client with a host over the network (`rootstream pair HOST`), or
join its room as a guest (`rootstream connect HOST --room CODE`).

The host must be running `rootstream host --pair`, which shows the code.
The exchange is the CPace PAKE of rootstream.crypto.pairing carried in
unsealed CONTROL messages; afterwards each side keeps the other's public key.
The socket loop lives with the client, not in rootstream.crypto: crypto
knows keys and messages, never sockets.
"""

from __future__ import annotations

import time
from pathlib import Path

from rootstream.crypto.client_keys import ClientKeys, host_entry_name
from rootstream.crypto.identity import Identity
from rootstream.crypto.pairing import (
    REASON_RATE_LIMITED,
    PairingClient,
    PairingFailed,
    PairingResult,
)
from rootstream.crypto.room import ROOM_REASONS, RoomClient
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
    result = _run_exchange(address, exchange, time.monotonic() + timeout, timeout,
                           hint="start the host with `rootstream host --pair` and check the port")
    return trust.add(host_entry_name(label), result.public_key)


def join_room(address: tuple[str, int], code: str, label: str, *,
              config_dir: str | None = None, name: str | None = None,
              timeout: float = 10.0) -> ClientKeys:
    """Join a host's room as a guest (rootstream.crypto.room): the host's key for
    this connection, nothing stored.  Raises PairingError."""
    directory = Path(config_dir) if config_dir else None
    identity = Identity.load_or_create(directory)
    deadline = time.monotonic() + timeout
    while True:
        exchange = RoomClient(identity, code, name=name)
        try:
            result = _run_exchange(address, exchange, deadline, timeout,
                                   hint="start the host with `rootstream host --room` and "
                                        "check the port")
        except PairingFailed as exc:
            if exc.reason == REASON_RATE_LIMITED and time.monotonic() + 1.0 < deadline:
                time.sleep(1.0)  # another guest's try came just before ours
                continue
            message, hint = ROOM_REASONS.get(exc.reason, (str(exc), exc.hint))
            raise PairingError(message, hint=hint) from None
        return ClientKeys(identity, result.public_key, label)


def session_keys(options) -> ClientKeys:
    """The keys a client (ClientOptions) connects with: its pairing's, or as a guest
    the room code's, kept for this client's lifetime only (reconnects included)."""
    label = options.host_label or options.host[0]
    if options.room:
        return join_room(options.host, options.room, label, config_dir=options.config_dir)
    return ClientKeys.load(options.config_dir, label, options.host[0])


def _run_exchange(address: tuple[str, int], exchange, deadline: float, timeout: float, *,
                  hint: str) -> PairingResult:
    outgoing = exchange.start()
    with UdpTransport(("::" if ":" in address[0] else "0.0.0.0", 0)) as transport:
        next_send = 0.0
        while exchange.result is None:
            now = time.monotonic()
            if now > deadline:
                raise NetworkError(
                    f"no pairing answer from {address[0]}:{address[1]} within {timeout:g} s",
                    hint=hint)
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
    return exchange.result


def this_machine() -> Identity:
    return Identity.load_or_create(None)
