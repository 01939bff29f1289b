"""Issue 15's tail: while a stream runs, each side hands the GIL over sooner.

Each side is measured in a process of its own (the other side is a real
`rootstream` process), so neither side's setting can stand in for the other's.
A sampler thread reads sys.getswitchinterval() while the stream runs.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from session_helpers import HostProcess, rootstream_command

from rootstream import switch_interval
from rootstream.client import Client, ClientOptions
from rootstream.host import Host, HostOptions
from rootstream.switch_interval import ShortSwitch

pytestmark = pytest.mark.slow

SHORT_S = 0.0007  # not CPython's default nor anything else in the suite: only ours sets it


class Sampler:
    """The smallest switch interval seen while inside the ``with``."""

    def __init__(self) -> None:
        self.smallest = sys.getswitchinterval()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.smallest = min(self.smallest, sys.getswitchinterval())
            time.sleep(0.005)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(5)


def test_holders_overlap_and_the_last_one_puts_the_setting_back(monkeypatch):
    monkeypatch.setattr(switch_interval, "STREAM_SWITCH_INTERVAL_S", SHORT_S)
    before = sys.getswitchinterval()
    host_side, client_side = ShortSwitch(), ShortSwitch()
    host_side.hold()
    client_side.hold()
    client_side.hold()  # idempotent: one holder counts once
    assert sys.getswitchinterval() == pytest.approx(SHORT_S)
    host_side.release()
    assert sys.getswitchinterval() == pytest.approx(SHORT_S)  # the client still streams
    client_side.release()
    client_side.release()
    assert sys.getswitchinterval() == pytest.approx(before)


def test_a_shorter_setting_already_made_is_kept(monkeypatch):
    monkeypatch.setattr(switch_interval, "STREAM_SWITCH_INTERVAL_S", SHORT_S)
    before = sys.getswitchinterval()
    sys.setswitchinterval(SHORT_S / 2)
    try:
        holder = ShortSwitch()
        holder.hold()
        assert sys.getswitchinterval() == pytest.approx(SHORT_S / 2)
        holder.release()
    finally:
        sys.setswitchinterval(before)


def test_the_host_shortens_it_while_it_streams(monkeypatch, tmp_path, udp_port):
    monkeypatch.setattr(switch_interval, "STREAM_SWITCH_INTERVAL_S", SHORT_S)
    before = sys.getswitchinterval()
    host = Host(HostOptions(source="test", size=(640, 360), fps=30, encoder="x264",
                            bind="127.0.0.1", port=udp_port, insecure=True, max_sessions=1,
                            stats_interval=60), log=lambda line: None)
    serving = threading.Thread(target=host.serve, name="serve", daemon=True)
    try:
        serving.start()
        with Sampler() as sampler:
            client = subprocess.run(
                rootstream_command("connect", f"127.0.0.1:{udp_port}", "--present", "null",
                                   "--insecure", "--frames", "30", "--no-input", "--no-audio"),
                capture_output=True, text=True, timeout=60)
            serving.join(15)
    finally:
        host.stop()
        serving.join(10)
        host.close()
    assert client.returncode == 0, client.stderr
    assert sampler.smallest == pytest.approx(SHORT_S)
    assert sys.getswitchinterval() == pytest.approx(before)  # the session is over


def test_the_client_shortens_it_while_it_streams(monkeypatch, tmp_path, udp_port):
    monkeypatch.setattr(switch_interval, "STREAM_SWITCH_INTERVAL_S", SHORT_S)
    before = sys.getswitchinterval()
    host = HostProcess(udp_port, "--source", "test", "--size", "640x360", "--fps", "30",
                       "--insecure", "--sessions", "1", log_dir=tmp_path)
    try:
        host.wait_for("listening on")
        client = Client(ClientOptions(host=("127.0.0.1", udp_port), present="null",
                                      insecure=True, frames=30, stats_interval=60,
                                      input=False, audio=False), log=lambda line: None)
        with Sampler() as sampler:
            result = client.run()
    finally:
        host.stop()
    assert result.frames_presented > 0, host.log()
    assert sampler.smallest == pytest.approx(SHORT_S)
    assert sys.getswitchinterval() == pytest.approx(before)
