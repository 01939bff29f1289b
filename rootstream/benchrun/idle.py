"""The idle phase: pings to the host without a session, the network alone.

No stream runs, so the round trips are the bare path's and the host's CPU
figure is its idle cost.  The host answers a ping outside a session only when
the ping is at least as long as the pong (docs/PROTOCOL.md §4), hence the
padding in :func:`rootstream.benchrun.meter.padded_ping`.
"""

from __future__ import annotations

import time

from rootstream.benchrun.meter import PhaseMeter
from rootstream.errors import ProtocolError
from rootstream.net.udp import UdpTransport
from rootstream.protocol import PacketType, Pong, decode_control

IDLE_PING_INTERVAL_S = 0.02


def run_idle(target: tuple[str, int], seconds: float, *,
             ping_interval_s: float = IDLE_PING_INTERVAL_S,
             on_tick=None) -> PhaseMeter:
    """Ping ``target`` for ``seconds``; the meter holds the exchanges and CPU samples."""
    meter = PhaseMeter(ping_interval_s=ping_interval_s)
    bind = ("::" if ":" in target[0] else "0.0.0.0", 0)
    with UdpTransport(bind) as transport:

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
