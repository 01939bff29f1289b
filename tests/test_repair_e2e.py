"""Repair of lost fragments with real processes and sockets.

A real ``rootstream host`` streams through the lossy relay on loopback in
issue 17's bursty model (1 % chance to enter a burst, bursts of 8 datagrams
on average, both directions) to an in-process client, encrypted.  The same
host serves a client that asks for repairs and one that does not (as a
client from before repair), one after the other, so the comparison is made
on the same machine at the same moment.  What is asserted does not depend
on the load: frames were repaired, no picture was shown past a missing
reference, and far fewer keyframes were needed; the shares and freezes
shown are bench/bench_loss.py's figures, with loose bounds here.

A raw socket then floods a host with repair requests, valid and malformed:
the host keeps streaming, counts the malformed ones, and never sends more
repair bytes than its cap (a quarter of the bitrate, plus the burst).  An
older host (``--no-repair``) is never asked.
"""

from __future__ import annotations

import re
import socket
import time

import pytest
from conftest import free_udp_port
from session_helpers import HostProcess, assert_pictures_intact, probe_result, probe_viewer

from rootstream.client import Client, ClientOptions
from rootstream.net.repair import MIN_BURST_BYTES, REPAIR_SHARE
from rootstream.protocol import (
    Capability,
    FragmentHeader,
    Hello,
    Keepalive,
    PacketType,
    decode_control,
    decode_datagram,
    encode_control,
    encode_datagram,
)
from rootstream.protocol.control import Config
from rootstream.protocol.repair import RepairRequest
from rootstream.protocol.video import FLAG_PARITY
from rootstream.testing.impair import GilbertElliott, Impairment, LossyRelay

pytestmark = pytest.mark.slow

SECONDS = 5.0
BURSTY_8 = Impairment(burst=GilbertElliott(p_good_to_bad=0.01, p_bad_to_good=1 / 8))
PATTERN = ("--source", "test", "--size", "640x360", "--fps", "60", "--bitrate", "4",
           "--audio", "none", "--input", "none")


def _through_relay(port: int, seed: int, **options) -> Client:
    with LossyRelay(upstream=("127.0.0.1", port), to_host=BURSTY_8, to_client=BURSTY_8,
                    seed=seed) as relay:
        client = Client(ClientOptions(host=relay.address, present="null", seconds=SECONDS,
                                      stats_interval=60, input=False, audio=False,
                                      reconnect_timeout=10, **options),
                        log=lambda line: None)
        client.run()
    return client


def _shown(client: Client) -> float:
    result = client.result
    return result.frames_presented / max(1, result.frames_received + result.frames_lost)


def _host_total(host: HostProcess, name: str) -> int:
    """The host's running total of ``name`` in its latest report (0: never counted)."""
    counts = [int(n) for n in re.findall(rf"\b{name}=(\d+)", host.log())]
    return max(counts, default=0)


def test_bursty_loss_is_repaired_instead_of_waiting_for_keyframes(tmp_path):
    port = free_udp_port()
    host = HostProcess(port, *PATTERN, log_dir=tmp_path)  # encrypted: paired with itself
    try:
        host.wait_for("listening on")
        repaired = _through_relay(port, seed=11)
        host.wait_for("said bye")
        old = _through_relay(port, seed=11, repair=False)
    finally:
        host.stop()
    with_repair, without = repaired.stats.totals, old.stats.totals
    assert repaired.result.reason == old.result.reason == f"ran {SECONDS:g} s"
    assert with_repair.get("frames_repaired", 0) > 0, with_repair
    assert with_repair.get("repair_requests", 0) > 0
    assert without.get("repair_requests", 0) == 0, "a client without repair asked for one"
    assert not old.receiver.repairing and repaired.receiver.repairing
    assert_pictures_intact(repaired)
    assert_pictures_intact(old)
    # The point of repair: a burst costs a round trip, not a lost frame and a
    # keyframe.  (Keyframe requests themselves are no measure: both clients
    # repeat theirs every 100 ms until the first keyframe gets through.)
    assert without.get("frames_lost", 0) >= 3, ("the bursts were never felt", without)
    assert with_repair.get("frames_lost", 0) * 3 <= without["frames_lost"], (
        with_repair, without)
    assert with_repair.get("keyframes_received", 0) < without.get("keyframes_received", 0), (
        with_repair, without)
    assert _host_total(host, "repairs_sent") > 0, host.log()
    # Loose bounds for a busy two-core machine (the bench has the figures: 95 %+
    # shown and freezes near 150 ms with repair, 75 % and 200-350 ms without).
    # At a load average of 17 a starved decoder alone froze 400 ms: the bound
    # only catches a client that stopped recovering, which freezes for good.
    assert _shown(repaired) > _shown(old)
    assert _shown(repaired) >= 0.80, (repaired.result, with_repair)
    assert repaired.result.longest_freeze_ms < 1000, with_repair


def test_an_older_host_is_never_asked_and_the_stream_recovers_with_keyframes(tmp_path):
    port = free_udp_port()
    host = HostProcess(port, *PATTERN, "--no-repair", log_dir=tmp_path)
    try:
        host.wait_for("listening on")
        client = _through_relay(port, seed=5)
    finally:
        host.stop()
    totals = client.stats.totals
    assert client.result.frames_presented > SECONDS * 60 * 0.3
    assert not client.receiver.repairing
    assert totals.get("repair_requests", 0) == 0
    assert totals.get("idr_requests", 0) > 0, "the bursts were never felt"
    assert _host_total(host, "repair_requests") == 0
    assert_pictures_intact(client)


def test_each_viewer_is_repaired_alone_and_the_healthy_one_pays_nothing(tmp_path):
    """host --viewers 2, encrypted: one viewer behind the bursty relay asks for
    repairs and gets them from the one store, sealed with its own keys; the
    viewer on a clean path asks for nothing and keeps its frames."""
    port = free_udp_port()
    host = HostProcess(port, *PATTERN, "--viewers", "2", log_dir=tmp_path)
    try:
        host.wait_for("listening on")
        with LossyRelay(upstream=("127.0.0.1", port), to_host=BURSTY_8, to_client=BURSTY_8,
                        seed=3) as relay:
            healthy = probe_viewer(port, 7)
            host.wait_for("1 watching")
            lossy = probe_viewer(relay.address[1], 6)
            host.wait_for("2 watching")
            lossy_seen = probe_result(lossy)
            healthy_seen = probe_result(healthy)
    finally:
        host.stop()
    assert lossy_seen["frames_repaired"] > 0, lossy_seen
    assert lossy_seen["intact"] and lossy_seen["presented"] > 0, lossy_seen
    assert healthy_seen["repair_requests"] == 0, healthy_seen
    assert healthy_seen["intact"], healthy_seen
    assert healthy_seen["presented"] >= 0.95 * healthy_seen["sent_since_first"], healthy_seen
    assert _host_total(host, "repairs_sent") > 0


class _RawViewer:
    """A session by hand, on an unencrypted host: hello, then whatever we like."""

    def __init__(self, port: int):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.002)
        self.host = ("127.0.0.1", port)
        self.seq = 0
        self.seen: set[tuple[int, int, bool]] = set()
        self.newest = None
        self.repeat_bytes = 0
        self.config = None

    def send(self, message_or_payload) -> None:
        payload = (message_or_payload if isinstance(message_or_payload, bytes)
                   else encode_control(message_or_payload))
        self.sock.sendto(encode_datagram(PacketType.CONTROL, self.seq, 0, payload), self.host)
        self.seq = (self.seq + 1) & 0xFFFF

    def drain(self) -> None:
        while True:
            try:
                datagram = self.sock.recv(2048)
            except TimeoutError:
                return
            header, payload = decode_datagram(datagram)
            if header.ptype == PacketType.CONTROL:
                message = decode_control(payload)
                if isinstance(message, Config):
                    self.config = message
                continue
            if header.ptype != PacketType.VIDEO:
                continue
            frag = FragmentHeader.parse(payload)
            key = (frag.frame_id, frag.index, bool(frag.flags & FLAG_PARITY))
            if key in self.seen:
                self.repeat_bytes += len(datagram)  # sent again: a repair
            self.seen.add(key)
            self.newest = frag.frame_id

    def close(self) -> None:
        self.sock.close()


def test_a_flood_of_requests_costs_at_most_the_cap_and_malformed_ones_are_dropped(tmp_path):
    port = free_udp_port()
    bitrate = 2_000_000
    host = HostProcess(port, "--source", "test", "--size", "640x360", "--fps", "30",
                       "--bitrate", "2", "--no-adapt", "--insecure", "--audio", "none",
                       "--input", "none", log_dir=tmp_path)
    viewer = _RawViewer(port)
    try:
        host.wait_for("listening on")
        deadline = time.monotonic() + 10
        while viewer.newest is None:
            assert time.monotonic() < deadline, host.log()
            viewer.send(Hello(capabilities=Capability.H264 | Capability.REPAIR,
                              max_width=640, max_height=360, client_name="flood"))
            viewer.drain()
        assert viewer.config.capabilities & Capability.REPAIR
        time.sleep(0.3)
        viewer.drain()
        viewer.repeat_bytes = 0
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < 2.0:
            newest = viewer.newest
            for back in range(4):  # whole frames, again and again
                viewer.send(RepairRequest((newest - back) & 0xFFFFFFFF))
            viewer.send(b"\x13\x00\x00")  # truncated
            viewer.send(b"\x13\x00\x00\x00\x01\x01\x01\x00\x01\x00\x00")  # count 0
            sent += 6
            viewer.drain()
        elapsed = time.monotonic() - started
        viewer.send(Keepalive(0))
        time.sleep(0.5)
        viewer.drain()
        after = viewer.newest
        time.sleep(0.3)
        viewer.drain()
        assert viewer.newest != after, "the host stopped streaming under the flood"
        time.sleep(1.2)  # one more report in the log
    finally:
        viewer.close()
        host.stop()
    cap = REPAIR_SHARE * bitrate / 8 * (elapsed + 0.5) + MIN_BURST_BYTES
    assert viewer.repeat_bytes > 0, "no repair answered"
    assert viewer.repeat_bytes <= cap * 1.1, (viewer.repeat_bytes, cap)
    assert _host_total(host, "repairs_dropped_rate") > 0, host.log()
    assert _host_total(host, "dropped_malformed") > 0, host.log()
