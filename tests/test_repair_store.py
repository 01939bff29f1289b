"""Repair on the host's side: the store of what was sent keeps to its bounds, the
budget to its share, and the desk sends what was asked, within both, to the
asking session only (a real UDP transport on loopback)."""

import socket
import time

import pytest

from rootstream.host.repairs import RepairDesk
from rootstream.host.viewers import Viewer
from rootstream.net.repair import MIN_BURST_BYTES, RepairBudget, RepairStore
from rootstream.net.udp import UdpTransport
from rootstream.protocol import FragmentHeader, PacketType, VideoFragmenter, decode_datagram
from rootstream.protocol.repair import RepairRequest
from rootstream.stats import StatsCollector

MS = 1_000_000


def _data(frame_id: int, count: int = 4, size: int = 1000) -> list[bytes]:
    return [bytes([frame_id & 0xFF]) * size for _ in range(count)]


def test_the_store_forgets_frames_older_than_its_age():
    store = RepairStore(max_age_ms=250)
    store.remember(1, _data(1), 0, 0)
    store.remember(2, _data(2), 0, 100 * MS)
    assert store.lookup(1, 250 * MS) is not None
    assert store.lookup(1, 251 * MS) is None  # too old: a keyframe serves better
    assert store.lookup(2, 251 * MS) is not None
    assert len(store) == 1 and store.bytes == 4000


def test_the_store_keeps_to_its_bytes_whatever_the_stream():
    store = RepairStore(max_bytes=10_000)
    for frame_id in range(20):
        store.remember(frame_id, _data(frame_id), 0, frame_id)
        assert store.bytes <= 10_000
    assert [f for f in range(20) if store.lookup(f, 20) is not None] == [18, 19]
    store.remember(99, _data(99, count=11), 0, 21)  # larger than the whole store
    assert store.lookup(99, 21) is None and store.bytes <= 10_000


def test_the_budget_allows_a_share_of_the_bitrate_and_a_burst():
    budget = RepairBudget(share=0.25, burst_s=0.1)
    bitrate = 8_000_000  # 1 MB/s: 250 KB/s of repairs, a burst of 25 KB (64 KiB at least)
    spent = 0
    while budget.take(1000, bitrate, 0):
        spent += 1000
    assert spent == MIN_BURST_BYTES // 1000 * 1000
    assert not budget.take(1000, bitrate, 1 * MS)  # 250 bytes came back: not enough
    assert budget.take(1000, bitrate, 5 * MS)  # 1250 bytes by now
    # Over a second of asking without pause, a second's share and the burst at most.
    sent = sum(1000 for t in range(5, 1005) if budget.take(1000, bitrate, t * MS))
    assert sent <= 250_000 + 1000


@pytest.fixture
def pair():
    host = UdpTransport(("127.0.0.1", 0))
    viewer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    viewer.bind(("127.0.0.1", 0))
    viewer.settimeout(0.5)
    yield host, viewer
    host.close()
    viewer.close()


def _received(sock: socket.socket) -> list[FragmentHeader]:
    got = []
    sock.settimeout(0.2)
    try:
        while True:
            header, payload = decode_datagram(sock.recv(2048))
            assert header.ptype == PacketType.VIDEO
            got.append(FragmentHeader.parse(payload))
    except TimeoutError:
        return got


def test_the_desk_sends_the_fragments_named_and_counts_the_rest(pair):
    transport, sock = pair
    store = RepairStore()
    frame = VideoFragmenter(max_payload=220).cut(bytes(2000), keyframe=False)  # 10 fragments
    store.remember(frame.frame_id, frame.data, 1234, time.monotonic_ns())
    stats = StatsCollector("host", ())
    desk = RepairDesk(store, transport=transport, bitrate=lambda: 8_000_000, stats=stats)
    viewer = Viewer(sock.getsockname(), 1, "v", 0.0, 0.0)
    assert desk.serve(viewer, RepairRequest(frame.frame_id, ((2, 3), (9, 5)))) == 4
    assert [h.index for h in _received(sock)] == [2, 3, 4, 9]
    assert desk.serve(viewer, RepairRequest(frame.frame_id + 1)) == 0
    assert stats.totals["repairs_dropped_gone"] == 1
    # A flood of whole-frame requests: the burst goes, then the budget says no.
    sent = sum(desk.serve(viewer, RepairRequest(frame.frame_id)) for _ in range(100))
    assert 0 < sent * 220 <= MIN_BURST_BYTES + 220 * 10
    assert stats.totals["repairs_dropped_rate"] > 0
    assert viewer.counts["repairs_sent"] == 4 + sent


def test_a_host_that_offers_no_repair_sends_nothing(pair):
    transport, sock = pair
    stats = StatsCollector("host", ())
    desk = RepairDesk(None, transport=transport, bitrate=lambda: 8_000_000, stats=stats)
    assert not desk.offered
    assert desk.serve(Viewer(sock.getsockname(), 1, "v", 0.0, 0.0), RepairRequest(0)) == 0
    assert stats.totals["repairs_dropped_unoffered"] == 1
    assert _received(sock) == []
