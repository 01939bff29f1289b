"""The bench against hosts that do not cooperate, over real UDP on loopback."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from session_helpers import HostProcess

from rootstream.benchrun.plan import Phase, idle_phase
from rootstream.benchrun.report import build_report
from rootstream.benchrun.run import BenchOptions, run_bench
from rootstream.errors import NetworkError, RootStreamError
from rootstream.net.udp import UdpTransport
from rootstream.protocol import (
    Bye,
    ByeReason,
    Hello,
    PacketType,
    Ping,
    decode_control,
    encode_control,
)


class BusyHost:
    """Answers pings (padded ones, as a real host does outside a session) and
    refuses every hello as busy, the way a host with another client does."""

    def __init__(self):
        self.transport = UdpTransport(("127.0.0.1", 0))
        self.address = self.transport.address
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        from rootstream.protocol import Pong

        while not self._stop.is_set():
            received = self.transport.receive(timeout=0.05)
            if received is None or received[0].ptype != PacketType.CONTROL:
                continue
            message, source = decode_control(received[1]), received[2]
            if isinstance(message, Hello):
                self.transport.send(PacketType.CONTROL, encode_control(Bye(ByeReason.BUSY)),
                                    source)
            elif isinstance(message, Ping) and len(received[1]) >= 37:
                pong = Pong(message.probe_id, message.t0_ns, 1, 2, cpu_ns=3)
                self.transport.send(PacketType.CONTROL, encode_control(pong), source)

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.transport.close()


def test_idle_phase_against_a_silent_port_says_so(udp_port):
    run = run_bench(BenchOptions(("127.0.0.1", udp_port), [idle_phase(0.3)], insecure=True))
    (phase, figures), = run.phases
    assert run.failure is None
    assert figures["clock"]["exchanges"] == 0 and figures["rtt_ms"] == {}
    assert "answered no pings" in figures["end"]


def test_a_busy_host_stops_the_run_and_keeps_what_was_measured():
    host = BusyHost()
    try:
        plan = [idle_phase(0.3), Phase.stream(640, 360, 30, 2, 2.0), idle_phase(0.3)]
        progress = []
        run = run_bench(BenchOptions(host.address, plan, insecure=True),
                        progress=progress.append)
    finally:
        host.close()
    assert isinstance(run.failure, NetworkError) and "busy" in str(run.failure)
    assert [phase.name for phase, _ in run.phases] == ["idle"]  # the third never ran
    assert run.phases[0][1]["clock"]["exchanges"] > 0
    assert {p.index for p in progress} == {0, 1}  # the failed phase had begun
    assert "busy" in build_report(run)["error"]


def test_the_command_prints_the_table_then_the_reason_and_fails():
    host = BusyHost()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "rootstream_cli", "bench", f"127.0.0.1:{host.address[1]}",
             "--insecure", "--idle-seconds", "0.3", "--phase", "idle", "--phase",
             "640x360@30:2"], capture_output=True, text=True, timeout=60)
    finally:
        host.close()
    assert done.returncode == 2, done.stderr
    assert "rtt p50 ms" in done.stdout and "idle" in done.stdout
    assert "busy" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_an_encrypted_host_answers_the_idle_phase_after_a_handshake(tmp_path, udp_port):
    # Host and bench share this test's identity, as one user's processes on one
    # machine do, so the loopback handshake needs no pairing.
    host = HostProcess(udp_port, "--source", "test", "--size", "640x360", "--fps", "30",
                       log_dir=tmp_path)
    try:
        host.wait_for("listening on")
        plan = [idle_phase(1.0), Phase.stream(640, 360, 30, 2, 2.0)]
        run = run_bench(BenchOptions(("127.0.0.1", udp_port), plan))
    finally:
        host.stop()
    assert run.failure is None, run.failure
    idle, stream = (figures for _, figures in run.phases)
    assert idle["clock"]["exchanges"] > 10 and "end" not in idle
    # Pings only: the idle phase never said hello, so only the stream phase connected.
    assert host.log().count("(rootstream-bench) connected") == 1, host.log()
    assert stream["frames"]["shown"] > 0
    for figures in (idle, stream):
        clock = figures["clock"]
        assert abs(clock["offset_ms"]) <= clock["error_ms"] + 1e-4


@pytest.mark.slow
def test_an_encrypted_host_busy_with_a_client_refuses_the_idle_phase(tmp_path, udp_port):
    from rootstream.client import Client, ClientOptions

    host = HostProcess(udp_port, "--source", "test", "--size", "640x360", "--fps", "30",
                       log_dir=tmp_path)
    client = Client(ClientOptions(host=("127.0.0.1", udp_port), present="null", seconds=20,
                                  input=False), log=lambda line: None)
    player = threading.Thread(target=client.run)
    try:
        host.wait_for("listening on")
        player.start()
        host.wait_for("connected")
        run = run_bench(BenchOptions(("127.0.0.1", udp_port), [idle_phase(0.5)]))
    finally:
        client.stop()
        player.join(10)
        host.stop()
    # The handshake itself is refused (rootstream.crypto), with the reason.
    assert isinstance(run.failure, RootStreamError) and "busy" in str(run.failure)
    assert run.phases == []
