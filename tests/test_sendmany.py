"""A frame's datagrams in one sendmmsg(2) (rootstream._native._sendmany), on
real loopback sockets: the same bytes in the same order as one sendto each,
refused datagrams skipped as before, and bad arguments refused."""

from __future__ import annotations

import errno
import socket

import pytest

import rootstream.net.udp as udp
from rootstream._native._sendmany import sendmany  # built by pip install -e: never skipped
from rootstream.crypto.handshake import SessionKeys
from rootstream.errors import NetworkError
from rootstream.net.udp import UdpTransport
from rootstream.protocol import PacketType


def _receiver() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(1)
    return sock


def _drain(sock: socket.socket) -> list[bytes]:
    got = []
    sock.settimeout(0.05)
    try:
        while True:
            got.append(sock.recv(2048))
    except (TimeoutError, BlockingIOError):
        return got


def _frame_from(batched: bool, keys, receiver: socket.socket, monkeypatch) -> list[bytes]:
    monkeypatch.setattr(udp, "SEND_BATCHED", batched)
    destination = receiver.getsockname()
    with UdpTransport(("127.0.0.1", 0), require_sealing=keys is not None) as host:
        if keys is not None:
            host.secure(destination, keys)
        payloads = [bytes([i]) * (host.max_payload - 3 * i) for i in range(17)]
        host.send_many(PacketType.VIDEO, payloads, destination, 4321)
        host.send_many(PacketType.VIDEO, payloads[:3], destination, 4322)  # parity after data
        assert host.counters.sent == 20
        assert host.sent_bytes_to(destination) == host.counters.sent_bytes
    return _drain(receiver)


@pytest.mark.parametrize("sealed", [False, True], ids=["clear", "sealed"])
def test_batched_datagrams_are_byte_exact_with_one_sendto_each(sealed, monkeypatch):
    # Fixed keys: each transport's Sealer starts at counter 0, so both seal alike.
    keys = SessionKeys(bytes(range(32)), bytes(32), bytes(32), bytes(32), True) if sealed \
        else None
    receiver = _receiver()
    try:
        each = _frame_from(False, keys, receiver, monkeypatch)
        batched = _frame_from(True, keys, receiver, monkeypatch)
    finally:
        receiver.close()
    assert len(each) == 20
    assert batched == each


def test_a_full_receive_queue_drops_datagrams_and_sends_the_rest():
    """A non-blocking socket whose peer's queue fills: EAGAIN drops that
    datagram, as the old loop did, and the ones after it are still tried."""
    mine, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    mine.setblocking(False)
    mine.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    try:
        datagrams = [bytes([i]) * 1000 for i in range(200)]
        sent, sent_bytes, error = sendmany(mine.fileno(), None, datagrams)
        assert error == 0
        assert 0 < sent < len(datagrams)
        assert sent_bytes == 1000 * sent
        got = []
        peer.setblocking(False)
        while True:
            try:
                got.append(peer.recv(2048))
            except BlockingIOError:
                break
        assert got == datagrams[:sent]  # in order; the refused tail never left
        # Room again: the next batch goes out whole.
        assert sendmany(mine.fileno(), None, datagrams[:3]) == (3, 3000, 0)
    finally:
        mine.close()
        peer.close()


def test_a_refused_port_skips_that_datagram_and_goes_on():
    """ECONNREFUSED (an ICMP port-unreachable from a gone peer) skips a
    datagram, as the old loop did; the rest are sent."""
    gone = _receiver()
    address = gone.getsockname()
    gone.close()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(address)
    try:
        sock.send(b"x")  # the port-unreachable comes back as the next send's error
        sent, _, error = sendmany(sock.fileno(), None, [b"a", b"b", b"c"])
        assert error == 0 and sent < 3
    finally:
        sock.close()


def test_another_error_stops_the_batch_and_the_transport_raises():
    with UdpTransport(("127.0.0.1", 0)) as host:
        sent, sent_bytes, error = sendmany(host.sock.fileno(), ("::1", 9), [b"a", b"b"])
        assert (sent, sent_bytes) == (0, 0) and error == errno.EAFNOSUPPORT
        with pytest.raises(NetworkError, match="cannot send to ::1:9"):
            host.send_many(PacketType.VIDEO, [b"a", b"b"], ("::1", 9), 0)
        assert host.counters.sent == 0


def test_a_closed_transport_sends_nothing_and_does_not_raise():
    receiver = _receiver()
    host = UdpTransport(("127.0.0.1", 0))
    host.close()
    try:
        host.send_many(PacketType.VIDEO, [b"a", b"b"], receiver.getsockname(), 0)
        assert host.counters.sent == 0 and _drain(receiver) == []
    finally:
        receiver.close()


@pytest.mark.parametrize("args, error, message", [
    ((-1, ("127.0.0.1", 9), [b"a"]), ValueError, "fd must be"),
    ((0, "127.0.0.1:9", [b"a"]), TypeError, "address must be"),
    ((0, ("127.0.0.1",), [b"a"]), TypeError, "address must be"),
    ((0, ("127.0.0.1", 70000), [b"a"]), ValueError, "port must be"),
    ((0, ("localhost", 9), [b"a"]), ValueError, "not an IP literal"),
    ((0, ("127.0.0.1", 9), 5), TypeError, "sequence of bytes-like"),
    ((0, ("127.0.0.1", 9), ["text"]), TypeError, "bytes-like"),
    ((0, ("127.0.0.1", 9)), TypeError, "takes exactly 3|expected 3"),
])
def test_bad_arguments_raise(args, error, message):
    with pytest.raises(error, match=message):
        sendmany(*args)


def test_a_host_name_falls_back_to_one_sendto_each():
    receiver = _receiver()
    try:
        with UdpTransport(("127.0.0.1", 0)) as host:
            host.send_many(PacketType.VIDEO, [b"a", b"b"], ("localhost", receiver.getsockname()[1]),
                           0)
            assert host.counters.sent == 2
        assert len(_drain(receiver)) == 2
    finally:
        receiver.close()
