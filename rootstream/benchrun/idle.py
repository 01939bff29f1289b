"""The idle phase: pings to the host without a session, the network alone.

No stream runs, so the round trips are the bare path's and the host's CPU
figure is its idle cost.  The host answers a ping outside a session only when
the ping is at least as long as the pong (docs/PROTOCOL.md §4), hence the
padding in :func:`rootstream.benchrun.meter.padded_ping`.  An encrypted host
hears only a peer that finished the handshake, so against one the idle phase
makes the same handshake a client does first, then pings sealed; it never
says hello, so no session (and no stream) starts.
"""

from __future__ import annotations

import time

from rootstream.benchrun.meter import PhaseMeter
from rootstream.crypto.handshake import HandshakeRefused
from rootstream.errors import CryptoError, NetworkError, ProtocolError
from rootstream.net.udp import UdpTransport, is_unsealed_crypto
from rootstream.protocol import PacketType, Pong, decode_control

IDLE_PING_INTERVAL_S = 0.02
HANDSHAKE_TIMEOUT_S = 5.0
HANDSHAKE_RETRY_S = 0.25


def run_idle(target: tuple[str, int], seconds: float, *, keys=None,
             ping_interval_s: float = IDLE_PING_INTERVAL_S, on_tick=None) -> PhaseMeter:
    """Ping ``target`` for ``seconds``; the meter holds the exchanges and CPU samples.

    ``keys`` (a :class:`rootstream.crypto.client_keys.ClientKeys`) for an
    encrypted host; None for one started with --insecure.
    """
    meter = PhaseMeter(ping_interval_s=ping_interval_s)
    bind = ("::" if ":" in target[0] else "0.0.0.0", 0)
    with UdpTransport(bind) as transport:
        if keys is not None:
            _handshake(transport, target, keys)

        def send(ptype: PacketType, payload: bytes) -> None:
            transport.send(ptype, payload, target)

        meter.session_started(None, send)  # no session: the host keeps none for pings
        deadline = time.monotonic_ns() + int(seconds * 1e9)
        while (now := time.monotonic_ns()) < deadline:
            received = transport.receive(timeout=min(ping_interval_s, (deadline - now) / 1e9))
            if received is not None and received[2][:2] == target[:2] \
                    and received[0].ptype == PacketType.CONTROL:
                try:
                    message = decode_control(received[1])
                except ProtocolError:
                    continue
                if isinstance(message, Pong):
                    meter.pong(message, received[3])  # stamped as it left the socket
            meter.tick(time.monotonic_ns())
            if on_tick is not None:
                on_tick(meter)
        meter.session_ended("idle phase over")
    meter.session = None
    return meter


def _handshake(transport: UdpTransport, target: tuple[str, int], keys) -> None:
    """The client's handshake (rootstream.crypto): fresh attempts until one is answered."""
    deadline = time.monotonic() + HANDSHAKE_TIMEOUT_S
    while time.monotonic() < deadline:
        initiator = keys.initiator()
        transport.send(PacketType.CONTROL, initiator.start(), target, seal=False)
        retry = time.monotonic() + HANDSHAKE_RETRY_S
        while (left := retry - time.monotonic()) > 0:
            received = transport.receive(timeout=left)
            if received is None or received[2][:2] != target[:2] \
                    or not is_unsealed_crypto(received[0], received[1]):
                continue
            try:
                initiator.receive(bytes(received[1]))
            except HandshakeRefused:
                raise
            except CryptoError:
                continue  # a late answer to an earlier attempt, or a forged one
            transport.secure(target, initiator.keys)
            return
    raise NetworkError(f"no answer from {target[0]}:{target[1]} within "
                       f"{HANDSHAKE_TIMEOUT_S:g} s",
                       hint="is `rootstream host` running there, and is UDP port "
                            f"{target[1]} open?")
