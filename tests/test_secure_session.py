"""Encryption, pairing and access control, end to end on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time

import pytest
from session_helpers import HostProcess, rootstream_command

from rootstream.client import Client, ClientOptions
from rootstream.crypto.handshake import HandshakeInitiator
from rootstream.crypto.identity import Identity
from rootstream.protocol import (
    FragmentHeader,
    Hello,
    PacketType,
    ProtocolError,
    decode_datagram,
    encode_control,
    encode_datagram,
)

pytestmark = pytest.mark.slow


def _env(config_dir) -> dict:
    return dict(os.environ, XDG_CONFIG_HOME=str(config_dir))


@pytest.fixture
def paired_host(tmp_path, udp_port):
    """A host with --pair in its own config dir, and a client dir paired with it."""
    host_dir, client_dir = tmp_path / "host-config", tmp_path / "client-config"
    host = HostProcess(udp_port, "--source", "test", "--size", "640x360", "--fps", "30",
                       "--pair", env=_env(host_dir), log_dir=tmp_path)
    try:
        host.wait_for("listening on")
        code = host.log().split("pairing code ", 1)[1][:7].replace(" ", "")
        yield host, code, client_dir
    finally:
        host.stop()


def _pair(port, code, client_dir):
    return subprocess.run(rootstream_command("pair", f"127.0.0.1:{port}", "--code", code),
                          env=_env(client_dir), capture_output=True, text=True, timeout=60)


def test_pairing_with_the_right_code_then_an_encrypted_session(paired_host, udp_port):
    host, code, client_dir = paired_host
    done = _pair(udp_port, code, client_dir)
    assert done.returncode == 0, done.stderr
    assert "paired with 127.0.0.1" in done.stdout
    host.wait_for("paired with")
    listing = subprocess.run(rootstream_command("pair", "--list"), env=_env(client_dir),
                             capture_output=True, text=True, timeout=30)
    assert "host 127.0.0.1" in listing.stdout
    session = subprocess.run(
        rootstream_command("connect", f"127.0.0.1:{udp_port}", "--present", "null",
                           "--frames", "20"),
        env=_env(client_dir), capture_output=True, text=True, timeout=60)
    assert session.returncode == 0, session.stderr
    # The host knows the client by the name it paired with.
    host.wait_for("connected")


def test_a_wrong_code_fails_and_three_burn_the_code(paired_host, udp_port):
    host, code, client_dir = paired_host
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(3):
        done = _pair(udp_port, wrong, client_dir)
        assert done.returncode == 2
        assert "wrong pairing code" in done.stderr
        time.sleep(1.05)  # the host refuses attempts less than a second apart
    host.wait_for("pairing code", timeout=5)
    assert host.log().count("pairing code") >= 2, "a burned code is replaced by a new one"
    # The burned code no longer works.
    assert _pair(udp_port, code, client_dir).returncode == 2


def test_an_unpaired_client_is_refused_and_gets_no_video(paired_host, udp_port, tmp_path):
    host, _, _ = paired_host
    stranger = subprocess.run(
        rootstream_command("connect", f"127.0.0.1:{udp_port}", "--present", "null",
                           "--seconds", "3"),
        env=_env(tmp_path / "stranger"), capture_output=True, text=True, timeout=60)
    assert stranger.returncode == 2
    assert "not paired" in stranger.stderr and "Traceback" not in stranger.stderr
    # Raw traffic from a stranger: a plain hello, a handshake with a random key,
    # and garbage.  The host may answer with at most one small refusal.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.settimeout(0.3)
        sent = received = 0
        messages = [
            encode_datagram(PacketType.CONTROL, 0, 0, encode_control(Hello(client_name="x"))),
            encode_datagram(PacketType.CONTROL, 1, 0, HandshakeInitiator(
                Identity.generate(), Identity.generate().public_key).start()),
            encode_datagram(PacketType.INPUT, 0, 0, b"\x01\x01\x00\x1e\x01"),
            os.urandom(300),
        ] * 5
        for message in messages:
            raw.sendto(message, ("127.0.0.1", udp_port))
            sent += len(message)
        deadline = time.monotonic() + 2
        answers = []
        while time.monotonic() < deadline:
            try:
                data = raw.recv(2048)
            except TimeoutError:
                continue
            received += len(data)
            answers.append(decode_datagram(data)[0].ptype)
    assert PacketType.VIDEO not in answers
    assert len(answers) <= 1 and received < sent


class _Tap:
    """A UDP forwarder between client and host that keeps what passes and,
    towards the client, replays every 10th datagram and tampers with every
    15th (re-checksummed, so it reaches the AEAD rather than the CRC)."""

    def __init__(self, upstream, meddle: bool = False):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.upstream, self.client, self.seen = upstream, None, []
        self.meddle = meddle
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        count = 0
        while self.running:
            try:
                data, address = self.sock.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            self.seen.append(data)
            if address != self.upstream:
                self.client = address
                self.sock.sendto(data, self.upstream)
                continue
            if not self.client:
                continue
            count += 1
            if self.meddle and count % 15 == 0 and len(data) > 40:
                data = _tampered(data)
            self.sock.sendto(data, self.client)
            if self.meddle and count % 10 == 0:
                self.sock.sendto(data, self.client)  # a replay

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


def _tampered(datagram: bytes) -> bytes:
    header, payload = decode_datagram(datagram)
    body = bytearray(payload)
    body[len(body) // 2] ^= 0x40
    return encode_datagram(header.ptype, header.sequence, header.timestamp_ms, bytes(body))


def test_video_on_the_wire_is_sealed(tmp_path, udp_port):
    # Host and client share this test's identity: "this machine", no pairing needed.
    host = HostProcess(udp_port, "--source", "test", "--size", "640x360", "--fps", "30",
                       log_dir=tmp_path)
    tap = None
    try:
        host.wait_for("listening on")
        tap = _Tap(("127.0.0.1", udp_port))
        result = Client(ClientOptions(host=tap.sock.getsockname(), present="null", frames=30,
                                      stats_interval=60), log=lambda line: None).run()
        assert result.frames_presented >= 30
    finally:
        if tap:
            tap.close()
        host.stop()
    videos = [decode_datagram(d)[1] for d in tap.seen
              if len(d) > 16 and d[5] == PacketType.VIDEO]
    assert len(videos) > 30
    for payload in videos:
        # A sealed payload is a counter and a box: it never parses as a fragment.
        with pytest.raises(ProtocolError):
            FragmentHeader.parse(bytes(payload))


def test_replayed_and_tampered_datagrams_are_dropped_and_counted(tmp_path, udp_port):
    host = HostProcess(udp_port, "--source", "test", "--size", "640x360", "--fps", "30",
                       log_dir=tmp_path)
    tap = None
    try:
        host.wait_for("listening on")
        tap = _Tap(("127.0.0.1", udp_port), meddle=True)
        client = Client(ClientOptions(host=tap.sock.getsockname(), present="null", frames=60,
                                      stats_interval=60), log=lambda line: None)
        result = client.run()
    finally:
        if tap:
            tap.close()
        host.stop()
    rejected = client.transport.counters.rejected
    assert rejected.get("replayed", 0) > 5, rejected
    assert rejected.get("forged", 0) > 3, rejected
    # FEC and keyframe requests carry the stream through the damage.
    assert result.frames_presented >= 60
    assert all(b > a for a, b in zip(result.markers, result.markers[1:], strict=False))


def test_insecure_is_refused_beyond_loopback_unless_forced():
    done = subprocess.run(rootstream_command("host", "--insecure", "--bind", "0.0.0.0"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "--insecure on 0.0.0.0" in done.stderr


def test_insecure_on_loopback_says_so_loudly(tmp_path, udp_port):
    host = HostProcess(udp_port, "--source", "test", "--size", "640x360", "--fps", "30",
                       "--insecure", log_dir=tmp_path)
    try:
        host.wait_for("listening on")
        assert "WARNING: --insecure" in host.log()
        result = Client(ClientOptions(host=("127.0.0.1", udp_port), present="null", frames=10,
                                      insecure=True, stats_interval=60),
                        log=lambda line: None).run()
        assert result.frames_presented >= 10
    finally:
        host.stop()
