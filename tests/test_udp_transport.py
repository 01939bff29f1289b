"""The UDP transport on real loopback sockets: framing, sealing, refusals."""

from __future__ import annotations

import socket

import pytest

from rootstream.crypto.handshake import HandshakeInitiator, HandshakeResponder
from rootstream.crypto.identity import Identity
from rootstream.crypto.trust import TrustedPeer
from rootstream.errors import NetworkError
from rootstream.net.udp import UdpTransport, parse_address
from rootstream.protocol import PacketType, encode_datagram


def _keys():
    client, host = Identity.generate(), Identity.generate()
    initiator = HandshakeInitiator(client, host.public_key)
    responder = HandshakeResponder(host, lambda key: TrustedPeer("c", key, 0.0))
    initiator.receive(responder.receive(initiator.start()))
    return initiator.keys, responder.keys


@pytest.fixture
def pair():
    a = UdpTransport(("127.0.0.1", 0), require_sealing=True)
    b = UdpTransport(("127.0.0.1", 0), require_sealing=True)
    yield a, b
    a.close()
    b.close()


def test_sealed_both_ways_and_never_in_clear(pair):
    a, b = pair
    a_keys, b_keys = _keys()
    a.secure(b.address, a_keys)
    b.secure(a.address, b_keys)
    a.send(PacketType.INPUT, b"key down", b.address)
    got = b.receive(timeout=1)
    assert got.sealed and bytes(got.payload) == b"key down"
    assert got.header.payload_size == len(b"key down") + 24
    # Once the session ends, nothing goes out in clear...
    a.secure(None)
    a.send(PacketType.INPUT, b"secret", b.address)
    assert a.dropped_unsealed == 1
    assert b.receive(timeout=0.2) is None
    # ...except what is meant to travel unsealed (pairing and handshake).
    a.send(PacketType.CONTROL, b"\x28\x01hello", b.address, seal=False)
    assert bytes(b.receive(timeout=1).payload) == b"\x28\x01hello"


def test_forged_and_replayed_boxes_are_counted_by_cause_and_dropped(pair):
    a, b = pair
    a_keys, b_keys = _keys()
    a.secure(b.address, a_keys)
    b.secure(a.address, b_keys)
    sealed = a._frame(PacketType.VIDEO, b"x" * 100, b.address, 0, True)
    a.sock.sendto(sealed, b.address)
    assert bytes(b.receive(timeout=1).payload) == b"x" * 100
    a.sock.sendto(sealed, b.address)  # the same datagram again
    forged = (50).to_bytes(8, "big") + bytes(116)  # a fresh counter, no valid tag
    a.sock.sendto(encode_datagram(PacketType.VIDEO, 9, 0, forged), b.address)
    assert b.receive(timeout=0.3) is None
    assert b.counters.rejected == {"replayed": 1, "forged": 1}


def test_receive_counts_malformed_datagrams(pair):
    a, b = pair
    a.sock.sendto(b"not a ROOT datagram", b.address)
    assert b.receive(timeout=0.3) is None
    assert b.counters.malformed == 1


def test_the_receive_buffer_is_what_the_kernel_granted():
    with UdpTransport(("127.0.0.1", 0)) as t:
        assert t.receive_buffer == t.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        assert t.small_receive_buffer == (t.receive_buffer < 2 * 1024 * 1024)


@pytest.mark.parametrize("text, want", [
    ("127.0.0.1", ("127.0.0.1", 47100)),
    ("127.0.0.1:5000", ("127.0.0.1", 5000)),
    ("[::1]:5000", ("::1", 5000)),
    ("localhost", (None, 47100)),
])
def test_parse_address(text, want):
    host, port = parse_address(text)
    assert port == want[1]
    if want[0]:
        assert host == want[0]


@pytest.mark.parametrize("text, message", [
    ("host:0", "the port must be 1-65535"),
    ("host:http", "the port must be 1-65535"),
    ("[::1", "missing ']'"),
    (":5000", "no host name"),
])
def test_bad_addresses_are_plain_errors(text, message):
    with pytest.raises(NetworkError, match=message):
        parse_address(text)


def test_an_insecure_transport_sends_in_clear():
    with UdpTransport(("127.0.0.1", 0)) as a, UdpTransport(("127.0.0.1", 0)) as b:
        a.send(PacketType.CONTROL, b"\x03\x00\x00\x00\x01", b.address, timestamp_ms=7)
        got = b.receive(timeout=1)
        assert not got.sealed and got.header.timestamp_ms == 7
        assert bytes(got.payload) == b"\x03\x00\x00\x00\x01"


def test_send_many_seals_a_whole_frame_in_sequence(pair):
    a, b = pair
    a_keys, b_keys = _keys()
    a.secure(b.address, a_keys)
    b.secure(a.address, b_keys)
    a._secured[b.address].seq[PacketType.VIDEO] = 0xFFFE  # the sequence numbers wrap
    fragments = [bytes([i]) * (a.max_payload - i) for i in range(5)]
    a.send_many(PacketType.VIDEO, fragments, b.address, 1234)
    got = [b.receive(timeout=1) for _ in fragments]
    assert [bytes(g.payload) for g in got] == fragments
    assert all(g.sealed and g.header.timestamp_ms == 1234 for g in got)
    assert [g.header.sequence for g in got] == [0xFFFE, 0xFFFF, 0, 1, 2]
    assert a.counters.sent == 5 and b.counters.lost == {}
    assert b.receive(timeout=0.05) is None


def test_send_many_refuses_a_whole_frame_to_an_address_without_keys(pair):
    a, b = pair
    a.send_many(PacketType.VIDEO, [b"one", b"two", b"three"], b.address, 0)
    assert a.dropped_unsealed == 3 and a.counters.sent == 0
    assert a._seq[PacketType.VIDEO] == 0  # refused datagrams take no sequence number
    assert b.receive(timeout=0.1) is None


def test_a_sealed_payload_over_the_limit_is_a_programming_error(pair):
    a, b = pair
    a_keys, _ = _keys()
    a.secure(b.address, a_keys)
    with pytest.raises(ValueError, match="exceeds the 1384-byte limit"):
        a.send(PacketType.VIDEO, bytes(a.max_payload + 1), b.address)


def test_sealed_datagrams_are_byte_exact_with_the_layered_definition(pair):
    """What _frame builds in one allocation equals header -> Sealer.seal ->
    encode_datagram done step by step."""
    from rootstream.crypto.seal import SEAL_OVERHEAD
    from rootstream.protocol.header import header_pre_image

    a, b = pair
    a_keys, _ = _keys()
    a.secure(b.address, a_keys)
    payload = bytes(range(200))
    datagram = a._frame(PacketType.AUDIO, memoryview(payload), b.address, 99, True)
    pre_image = header_pre_image(PacketType.AUDIO, 0, 99, len(payload) + SEAL_OVERHEAD)
    layered = encode_datagram(PacketType.AUDIO, 0, 99,
                              a_keys.sealer().seal(pre_image, payload))
    assert datagram == layered


def test_receive_takes_a_queued_burst_then_waits_out_its_timeout():
    with UdpTransport(("127.0.0.1", 0)) as a, UdpTransport(("127.0.0.1", 0)) as b:
        a.send_many(PacketType.VIDEO, [b"%d" % i for i in range(20)], b.address, 3)
        assert [bytes(b.receive(timeout=0).payload) for _ in range(20)] == [
            b"%d" % i for i in range(20)]
        assert b.receive(timeout=0) is None
        assert b.receive(timeout=0.05) is None
    assert b.receive(timeout=1) is None  # closed: returns at once instead of raising


def test_several_secured_peers_each_have_their_own_keys_and_sequence_numbers():
    """A host with several viewers: one socket, a session per peer, and no
    peer sees gaps in its sequence made by datagrams to the others."""
    host = UdpTransport(("127.0.0.1", 0), require_sealing=True)
    viewers = [UdpTransport(("127.0.0.1", 0), require_sealing=True) for _ in range(2)]
    try:
        for viewer in viewers:
            host_keys, viewer_keys = _keys()
            host.secure(viewer.address, host_keys)
            viewer.secure(host.address, viewer_keys)
        assert set(host.secured_peers) == {v.address for v in viewers}
        for _ in range(3):
            for viewer in viewers:
                host.send_many(PacketType.VIDEO, [b"a", b"b"], viewer.address, 0)
        for viewer in viewers:
            got = [viewer.receive(timeout=1) for _ in range(6)]
            assert all(g.sealed for g in got)
            assert [g.header.sequence for g in got] == list(range(6))
            assert host.sent_bytes_to(viewer.address) == sum(len(g.payload) + 40 for g in got)
        # Ending one viewer's session leaves the other's keys in place.
        host.forget(viewers[0].address)
        host.send(PacketType.CONTROL, b"\x02x", viewers[0].address)
        host.send(PacketType.CONTROL, b"\x02y", viewers[1].address)
        assert host.dropped_unsealed == 1
        assert viewers[0].receive(timeout=0.2) is None
        assert bytes(viewers[1].receive(timeout=1).payload) == b"\x02y"
    finally:
        for transport in (host, *viewers):
            transport.close()
