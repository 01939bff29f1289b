"""Pairing, handshake and sealed streaming end to end over real UDP sockets on
loopback, through the project's impairing relay (duplication, reordering,
jitter).  The loops here are the smallest the sans-IO classes allow: they show
the host/client session loops what to do with each message and each error."""

from __future__ import annotations

import os
import selectors
import socket
import time

import pytest

from rootstream.crypto import (
    SEAL_OVERHEAD,
    HandshakeInitiator,
    HandshakeRefused,
    HandshakeResponder,
    Identity,
    PacketRejected,
    PairingClient,
    PairingFailed,
    PairingHost,
    Refuser,
    ReplayGuard,
    TrustStore,
    new_pairing_code,
)
from rootstream.errors import CryptoError, PairingError
from rootstream.protocol.control import CryptoMessage, decode_control
from rootstream.protocol.header import (
    HEADER,
    MAGIC,
    MAX_PAYLOAD,
    VERSION,
    PacketType,
    decode_datagram,
    encode_datagram,
)
from rootstream.testing.impair import Impairment, LossyRelay


def control(message: bytes) -> bytes:
    return encode_datagram(PacketType.CONTROL, 0, 0, message)


def crypto_message(datagram: bytes) -> bytes:
    _, payload = decode_datagram(datagram)
    message = decode_control(payload)
    assert isinstance(message, CryptoMessage)
    return bytes(message)


def sealed(sealer, ptype: PacketType, seq: int, payload: bytes) -> bytes:
    size = len(payload) + SEAL_OVERHEAD
    pre_image = HEADER.pack(MAGIC, VERSION, ptype, seq, 0, size, 0)
    return encode_datagram(ptype, seq, 0, sealer.seal(pre_image, payload))


def open_sealed(opener, datagram: bytes) -> bytes:
    _, box = decode_datagram(datagram)
    return opener.open(datagram[:16], box)


def pump(handlers, quiet=0.2, limit=10.0):
    """Deliver datagrams to handlers until the link has been quiet for ``quiet`` s.

    ``handlers`` maps a socket to ``fn(datagram, source) -> bytes | None``; a
    returned datagram goes back to ``source``."""
    selector = selectors.DefaultSelector()
    for sock in handlers:
        selector.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            events = selector.select(timeout=quiet)
            if not events:
                return
            for key, _ in events:
                datagram, source = key.fileobj.recvfrom(2048)
                reply = handlers[key.fileobj](datagram, source)
                if reply is not None:
                    key.fileobj.sendto(reply, source)
        pytest.fail("the link never went quiet")
    finally:
        selector.close()


@pytest.fixture
def sockets():
    pair = []
    for _ in range(2):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        pair.append(sock)
    yield pair
    for sock in pair:
        sock.close()


def test_pair_handshake_and_stream_through_a_duplicating_reordering_relay(tmp_path, sockets):
    host_sock, client_sock = sockets
    host_id = Identity.load_or_create(tmp_path / "host")
    client_id = Identity.load_or_create(tmp_path / "client")
    host_trust = TrustStore.open(tmp_path / "host")
    client_trust = TrustStore.open(tmp_path / "client")
    drops = {"host": [], "client": []}

    with LossyRelay(upstream=host_sock.getsockname(), seed=5,
                    to_host=Impairment(duplicate=1.0),  # every datagram arrives twice
                    to_client=Impairment(duplicate=0.2, reorder=0.2, reorder_delay_ms=3,
                                         jitter_ms=1)) as relay:
        # --- pairing: the code is shown on the host and typed on the client.
        code = new_pairing_code()
        pairing_host = PairingHost(host_id, code, time.monotonic(), name="den-pc")
        pairing_client = PairingClient(client_id, code, name="laptop")

        def host_pairing(datagram, source):
            try:
                reply = pairing_host.receive(crypto_message(datagram), time.monotonic())
            except PairingFailed as exc:
                reply = exc.reply
            except PairingError as exc:
                drops["host"].append(str(exc))
                return None
            return None if reply is None else control(reply)

        def client_pairing(datagram, source):
            try:
                reply = pairing_client.receive(crypto_message(datagram))
            except PairingError as exc:
                drops["client"].append(str(exc))
                return None
            return None if reply is None else control(reply)

        client_sock.sendto(control(pairing_client.start()), relay.address)
        pump({host_sock: host_pairing, client_sock: client_pairing})
        assert pairing_host.result.public_key == client_id.public_key
        assert pairing_client.result.public_key == host_id.public_key
        assert pairing_host.tries_left == 2  # the duplicated START used no second try
        host_trust.add(pairing_host.result.name, pairing_host.result.public_key)
        client_trust.add(pairing_client.result.name, pairing_client.result.public_key)

        # --- handshake, then the client speaks first (the host streams only then).
        guard = ReplayGuard()
        sessions = {}
        initiator = HandshakeInitiator(client_id, client_trust.find("den-pc").public_key)

        def host_handshake(datagram, source):
            message = crypto_message(datagram)
            try:
                responder = HandshakeResponder(host_id, TrustStore.open(tmp_path / "host").get,
                                               guard)
                reply = responder.receive(message)
            except CryptoError as exc:
                drops["host"].append(str(exc))
                return None
            sessions["host"] = responder.keys
            return control(reply)

        def client_handshake(datagram, source):
            try:
                initiator.receive(crypto_message(datagram))
            except CryptoError as exc:  # the relay's copy of RESPONSE
                drops["client"].append(str(exc))
            return None

        client_sock.sendto(control(initiator.start()), relay.address)
        pump({host_sock: host_handshake, client_sock: client_handshake})
        assert drops["host"].count("handshake message is a replay") == 1
        host_keys, client_keys = sessions["host"], initiator.keys
        assert host_keys.session_id == client_keys.session_id
        assert host_keys.peer_public_key == client_id.public_key

        # --- sealed traffic both ways.
        to_client = relay.counters["to_client"].duplicated
        host_sealer, host_opener = host_keys.sealer(), host_keys.opener()
        client_sealer, client_opener = client_keys.sealer(), client_keys.opener()
        frames = [os.urandom(n) for n in ([MAX_PAYLOAD - SEAL_OVERHEAD] * 200 + [1, 100])]
        received, rejected = [], {"host": [], "client": []}

        def host_stream(datagram, source):
            try:
                assert open_sealed(host_opener, datagram) == b"ready"
            except PacketRejected as exc:
                rejected["host"].append(exc.reason)
                return None
            for seq, frame in enumerate(frames):  # the client is live: stream
                host_sock.sendto(sealed(host_sealer, PacketType.VIDEO, seq, frame), source)
            return None

        def client_stream(datagram, source):
            try:
                received.append(open_sealed(client_opener, datagram))
            except PacketRejected as exc:
                rejected["client"].append(exc.reason)
            return None

        client_sock.sendto(sealed(client_sealer, PacketType.CONTROL, 0, b"ready"), relay.address)
        pump({host_sock: host_stream, client_sock: client_stream})

    duplicated = relay.counters["to_client"].duplicated - to_client
    assert rejected["host"] == ["replayed"]  # the relay's copy of "ready"
    assert sorted(received) == sorted(frames)  # every frame once, in whatever order
    assert rejected["client"] == ["replayed"] * duplicated
    assert relay.counters["to_client"].reordered > 0 and duplicated > 0


def test_stranger_gets_one_small_refusal_over_udp(tmp_path, sockets):
    host_sock, stranger_sock = sockets
    host_id = Identity.load_or_create(tmp_path / "host")
    trust = TrustStore.open(tmp_path / "host")
    refuser = Refuser(cooldown=10.0)
    sent, answered = [], []

    def host(datagram, source):
        try:
            return control(HandshakeResponder(host_id, trust.get).receive(
                crypto_message(datagram)))
        except HandshakeRefused as exc:
            reply = refuser.refuse(source, len(datagram), exc.reason,
                                   time.monotonic())
            if reply is not None:
                answered.append(control(reply))
                return answered[-1]
            return None

    stranger = HandshakeInitiator(Identity.generate(), host_id.public_key)
    for _ in range(3):
        sent.append(control(stranger.start()))
        stranger_sock.sendto(sent[-1], host_sock.getsockname())

    def stranger_side(datagram, source):
        with pytest.raises(HandshakeRefused, match="not paired"):
            stranger.receive(crypto_message(datagram))

    pump({host_sock: host, stranger_sock: stranger_side})
    assert len(answered) == 1 and len(answered[0]) <= len(sent[0])
    assert stranger.keys is None
