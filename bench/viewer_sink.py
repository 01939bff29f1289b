"""Viewers that receive and open, and decode nothing: the fan-out's load.

``python bench/viewer_sink.py HOST PORT SECONDS [--count N] [--priority idle|normal]``
runs N viewer sessions in this one process.  Each does what a real client
does on the wire - the Noise handshake with this machine's identity, a sealed
hello, keepalives - and verifies and opens every datagram the host sends
(rootstream.net.udp), but neither reassembles nor decodes, so they measure
what N viewers cost the host, not N decoders fighting for the cores.

The sinks stand for OTHER machines.  With ``--priority idle`` (the default)
the threads that receive and open run at SCHED_IDLE (unprivileged, see
sched(7)): they get the CPU only when nothing else on this box wants it, so
they do not take cycles from the first viewer's decoder and presenter that
real remote viewers would never take.  The keepalives go from one thread at
normal priority (two small datagrams a second per session) so a starved
receiver is not mistaken by the host for a gone viewer: the host keeps
sealing, pacing and sending to every session, which is what is measured.
``--priority normal`` receives at normal priority (the old figure).

Prints one JSON line at the end: a list with, per session, the video
datagrams opened, rejected, seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
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


def idle_this_thread() -> str:
    """Put the calling thread at SCHED_IDLE (Linux applies the policy per
    thread); nice 19 where that is refused.  Returns what was applied."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return "SCHED_IDLE"
    except (AttributeError, OSError):
        os.nice(19 - os.nice(0))
        return "nice 19"


class Session:
    """One viewer: its own socket, keys and counters."""

    def __init__(self, host: tuple[str, int]):
        self.host = host
        self.transport = UdpTransport(("127.0.0.1", 0), require_sealing=True)
        _connect(self.transport, host)
        self.opened = 0

    def receive_until(self, end: float, idle: bool) -> None:
        if idle:
            idle_this_thread()
        while time.monotonic() < end:
            got = self.transport.receive(timeout=0.05)
            if got is not None and got.sealed and got.header.ptype == PacketType.VIDEO:
                self.opened += 1

    def keepalive(self, now: float) -> None:
        self.transport.send(PacketType.CONTROL,
                            encode_control(Keepalive(int(now * 1000) & 0xFFFFFFFF)), self.host)

    def close(self) -> dict:
        self.transport.send(PacketType.CONTROL, encode_control(Bye(ByeReason.NORMAL)), self.host)
        self.transport.close()
        return {"opened": self.opened,
                "rejected": sum(self.transport.counters.rejected.values())}


def _keepalives(sessions: list[Session], end: float) -> None:
    while (now := time.monotonic()) < end:
        for session in list(sessions):
            session.keepalive(now)
        time.sleep(min(KEEPALIVE_S, max(0.0, end - now)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("seconds", type=float)
    parser.add_argument("--count", type=int, default=1, help="viewer sessions to run")
    parser.add_argument("--priority", choices=("idle", "normal"), default="idle")
    args = parser.parse_args()
    host = (args.host, args.port)
    started = time.monotonic()
    end = started + args.seconds
    sessions: list[Session] = []
    # Keepalives run from the start, at normal priority, so a session that
    # waits for the others' handshakes is not dropped as silent.
    keeper = threading.Thread(target=_keepalives, args=(sessions, end), daemon=True)
    keeper.start()
    receivers = []
    for _ in range(args.count):
        session = Session(host)
        sessions.append(session)
        receivers.append(threading.Thread(target=session.receive_until,
                                          args=(end, args.priority == "idle"), daemon=True))
        receivers[-1].start()
    keeper.join()
    for receiver in receivers:
        receiver.join(timeout=5)
    seconds = round(time.monotonic() - started, 2)
    print(json.dumps([dict(s.close(), seconds=seconds) for s in sessions]), flush=True)


if __name__ == "__main__":
    main()
