"""A real host process and a real client on loopback: what a user sees."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest
from session_helpers import HostProcess, rootstream_command

from rootstream.client import Client, ClientOptions

pytestmark = pytest.mark.slow


@pytest.fixture
def start_host(tmp_path, udp_port):
    hosts = []

    def start(*args, env=None, port=None):
        host = HostProcess(port or udp_port, *args, env=env, log_dir=tmp_path)
        hosts.append(host)
        host.wait_for("listening on")
        return host

    yield start
    for host in hosts:
        host.stop()


def _client(port, **kw) -> Client:
    kw.setdefault("present", "null")
    return Client(ClientOptions(host=("127.0.0.1", port), stats_interval=60, **kw),
                  log=lambda line: None)


def test_frames_arrive_and_their_embedded_numbers_advance(start_host, udp_port):
    start_host("--source", "test", "--size", "640x360", "--fps", "30", "--bitrate", "2")
    result = _client(udp_port, frames=45, same_clock=True).run()
    assert result.frames_presented >= 45
    assert result.config.width == 640 and result.config.height == 360
    markers = result.markers
    assert len(markers) >= 40, "the test pattern's frame numbers must survive H.264"
    assert all(b > a for a, b in zip(markers, markers[1:], strict=False)), markers
    assert markers[-1] - markers[0] >= len(markers) - 1


def test_connect_command_shows_frames_and_exits_cleanly(start_host, udp_port):
    start_host("--source", "test", "--size", "640x360", "--fps", "30")
    done = subprocess.run(
        rootstream_command("connect", f"127.0.0.1:{udp_port}", "--present", "null",
                           "--frames", "20", "--stats-interval", "1"),
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "connected to" in done.stderr and "frames shown" in done.stderr
    assert "client:" in done.stderr  # the one-line figures


def test_second_client_is_refused_while_the_first_plays(start_host, udp_port):
    start_host("--source", "test", "--size", "640x360", "--fps", "30")
    first = _client(udp_port, seconds=6)
    runner = threading.Thread(target=first.run)
    runner.start()
    try:
        time.sleep(1.5)
        second = subprocess.run(
            rootstream_command("connect", f"127.0.0.1:{udp_port}", "--present", "null",
                               "--seconds", "3"),
            capture_output=True, text=True, timeout=30)
        assert second.returncode != 0
        assert "busy" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.stop()
        runner.join(10)
    assert first.result.frames_presented > 0


def test_a_killed_client_frees_the_host_for_the_next_one(start_host, udp_port):
    host = start_host("--source", "test", "--size", "640x360", "--fps", "30")
    doomed = subprocess.Popen(
        rootstream_command("connect", f"127.0.0.1:{udp_port}", "--present", "null",
                           "--seconds", "60"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        host.wait_for("connected")
        time.sleep(0.5)
        doomed.send_signal(signal.SIGKILL)  # no bye: the host must notice the silence
        doomed.wait(5)
        host.wait_for("went silent", timeout=5)
    finally:
        if doomed.poll() is None:
            doomed.kill()
    result = _client(udp_port, frames=15).run()
    assert result.frames_presented >= 15


def test_a_killed_host_is_reported_by_the_client_within_two_seconds(start_host, udp_port):
    host = start_host("--source", "test", "--size", "640x360", "--fps", "30")
    client = _client(udp_port, seconds=30)
    outcome = {}

    def run():
        outcome["result"] = client.run()
        outcome["ended"] = time.monotonic()

    runner = threading.Thread(target=run)
    runner.start()
    host.wait_for("connected")
    time.sleep(1.0)
    os.kill(host.proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    runner.join(10)
    assert outcome["result"].reason == "host went silent"
    noticed = outcome["ended"] - killed
    # 2 s of silence, plus one receive poll and the client's own shutdown.
    assert noticed < 2.6, f"took {noticed:.2f} s"


def test_no_host_gives_a_clear_error_not_a_hang(udp_port):
    done = subprocess.run(
        rootstream_command("connect", f"127.0.0.1:{udp_port}", "--present", "null"),
        capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "no answer from 127.0.0.1" in done.stderr
    assert "hint:" in done.stderr and "Traceback" not in done.stderr
