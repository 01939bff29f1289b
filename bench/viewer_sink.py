"""A viewer that receives and opens, and decodes nothing: the fan-out's load.

``python bench/viewer_sink.py HOST PORT SECONDS`` does what a real client
does on the wire - the Noise handshake with this machine's identity, a sealed
hello, keepalives - and verifies and opens every datagram the host sends
(rootstream.net.udp), but neither reassembles nor decodes, so N of them
measure what N viewers cost the host, not N decoders fighting for the cores.
Prints one JSON line at the end: video datagrams opened, rejected, seconds.
"""

from __future__ import annotations

import json
import sys
import time

from rootstream.crypto.client_keys import ClientKeys
from rootstream.crypto.handshake import HandshakeRefused
from rootstream.errors import CryptoError
from rootstream.net.udp import UdpTransport, is_unsealed_crypto
from rootstream.protocol import (
    Bye,
    ByeReason,
    Config,
    Hello,
    Keepalive,
    PacketType,
    decode_control,
    encode_control,
)
from rootstream.protocol.control import Capability
from rootstream.session import KEEPALIVE_S


def _connect(transport: UdpTransport, host: tuple[str, int]) -> None:
    """Handshake, then hello until the config comes."""
    keys = ClientKeys.load(None, host[0], host[0])
    deadline = time.monotonic() + 10
    while transport.secured_peer is None:
        if time.monotonic() > deadline:
            raise SystemExit("no handshake answer")
        initiator = keys.initiator()
        transport.send(PacketType.CONTROL, initiator.start(), host, seal=False)
        got = transport.receive(timeout=0.25)
        if got is not None and is_unsealed_crypto(got.header, got.payload):
            try:
                initiator.receive(bytes(got.payload))
            except HandshakeRefused as exc:
                raise SystemExit(str(exc)) from exc
            except CryptoError:
                continue
            transport.secure(host, initiator.keys)
    hello = encode_control(Hello(capabilities=Capability.H264 | Capability.FEC,
                                 client_name="sink"))
    while True:
        if time.monotonic() > deadline:
            raise SystemExit("no config")
        transport.send(PacketType.CONTROL, hello, host)
        end = time.monotonic() + 0.25
        while (left := end - time.monotonic()) > 0:
            got = transport.receive(timeout=left)
            if got is not None and got.header.ptype == PacketType.CONTROL and got.sealed:
                if isinstance(decode_control(got.payload), Config):
                    return


def main() -> None:
    host, seconds = (sys.argv[1], int(sys.argv[2])), float(sys.argv[3])
    transport = UdpTransport(("127.0.0.1", 0), require_sealing=True)
    _connect(transport, host)
    opened = 0
    started = time.monotonic()
    next_keepalive = started
    while (now := time.monotonic()) - started < seconds:
        if now >= next_keepalive:
            transport.send(PacketType.CONTROL, encode_control(Keepalive(int(now * 1000)
                                                                        & 0xFFFFFFFF)), host)
            next_keepalive = now + KEEPALIVE_S
        got = transport.receive(timeout=0.05)
        if got is not None and got.sealed and got.header.ptype == PacketType.VIDEO:
            opened += 1
    transport.send(PacketType.CONTROL, encode_control(Bye(ByeReason.NORMAL)), host)
    print(json.dumps({"opened": opened, "rejected": sum(transport.counters.rejected.values()),
                      "seconds": round(time.monotonic() - started, 2)}), flush=True)
    transport.close()


if __name__ == "__main__":
    main()
