"""Liveness: outages, a restarted host, giving up, and bye, with real processes.

The relay is switched to drop everything in both directions to make an
outage, and back; a host is killed and started again on the same port.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import numpy as np
import pytest
from conftest import free_udp_port
from session_helpers import HostProcess, rootstream_command

from rootstream.capture.x11 import X11Capture
from rootstream.client import Client, ClientOptions
from rootstream.present.overlay import find_font
from rootstream.session import PEER_TIMEOUT_S
from rootstream.testing.impair import Impairment, LossyRelay

pytestmark = pytest.mark.slow

# Liveness is the subject here, not sealing: both ends run unencrypted (on loopback).
HOST_ARGS = ("--source", "test", "--size", "480x270", "--fps", "60", "--bitrate", "2",
             "--insecure")


@pytest.fixture
def start_host(tmp_path):
    hosts = []

    def start(port):
        host = HostProcess(port, *HOST_ARGS, log_dir=tmp_path)
        hosts.append(host)
        host.wait_for("listening on")
        return host

    yield start
    for host in hosts:
        host.stop()


class RunningClient:
    """A client on its own thread, its log lines kept for the assertions."""

    def __init__(self, address, **options):
        self.lines: list[str] = []
        self.client = Client(ClientOptions(host=address, present="null", stats_interval=60,
                                           insecure=True, **options), log=self.lines.append)
        self.thread = threading.Thread(target=self.client.run)
        self.thread.start()

    def wait_for_frames(self, count: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self.client.result.frames_presented < count:
            assert time.monotonic() < deadline, f"stuck at {self.result.frames_presented}"
            assert self.thread.is_alive(), self.lines
            time.sleep(0.02)

    def wait_for_line(self, text: str, timeout: float = 10) -> float:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert time.monotonic() < deadline, f"never logged {text!r}: {self.lines}"
            time.sleep(0.02)
        return time.monotonic()

    def join(self, timeout: float = 15):
        self.thread.join(timeout)
        assert not self.thread.is_alive()
        return self.client.result

    @property
    def result(self):
        return self.client.result


def outage(relay: LossyRelay, seconds: float) -> float:
    """Drop everything both ways for ``seconds``; returns when the path came back."""
    saved = relay.to_client.settings, relay.to_host.settings
    relay.to_client.settings = relay.to_host.settings = Impairment(loss=1.0)
    time.sleep(seconds)
    relay.to_client.settings, relay.to_host.settings = saved
    return time.monotonic_ns()


def first_picture_after(result, t_ns: int) -> float:
    """Milliseconds from ``t_ns`` to the first picture shown after it."""
    later = [t for t in result.present_ns if t > t_ns]
    assert later, "no picture after the path came back"
    return (later[0] - t_ns) / 1e6


def test_a_short_outage_is_bridged_without_reconnecting(start_host):
    host = start_host(free_udp_port())
    with LossyRelay(upstream=("127.0.0.1", host.port)) as relay:
        running = RunningClient(relay.address, seconds=3.0, reconnect_timeout=10)
        running.wait_for_frames(30)
        back = outage(relay, 0.3)
        result = running.join()
    assert result.reason == "ran 3 s"
    assert result.reconnects == 0
    assert not any("reconnecting" in line for line in running.lines)
    # Generous: the figure itself is measured in bench/bench_loss.py.
    assert first_picture_after(result, back) < 1000
    markers = result.markers
    assert all(b > a for a, b in zip(markers, markers[1:], strict=False))


def test_a_long_outage_shows_reconnecting_then_resumes(start_host):
    host = start_host(free_udp_port())
    with LossyRelay(upstream=("127.0.0.1", host.port)) as relay:
        running = RunningClient(relay.address, seconds=7.0, reconnect_timeout=10)
        running.wait_for_frames(30)
        saved = relay.to_client.settings
        relay.to_client.settings = relay.to_host.settings = Impairment(loss=1.0)
        running.wait_for_line("rootstream: reconnecting", timeout=PEER_TIMEOUT_S + 2)
        shown_while_away = running.result.frames_presented
        time.sleep(1.0)  # the host drops the silent client meanwhile
        assert running.result.frames_presented == shown_while_away
        relay.to_client.settings = relay.to_host.settings = saved
        running.wait_for_line("rootstream: reconnected", timeout=3)
        running.wait_for_frames(shown_while_away + 30, timeout=5)
        result = running.join()
    assert result.reason == "ran 7 s"
    assert result.reconnects == 1
    host.wait_for("went silent")
    markers = result.markers
    assert all(b > a for a, b in zip(markers, markers[1:], strict=False))


def test_a_restarted_host_is_found_again(start_host):
    port = free_udp_port()
    first = start_host(port)
    running = RunningClient(("127.0.0.1", port), seconds=8.0, reconnect_timeout=10)
    running.wait_for_frames(30)
    first.proc.kill()
    running.wait_for_line("rootstream: reconnecting", timeout=PEER_TIMEOUT_S + 2)
    shown = running.result.frames_presented
    start_host(port)
    running.wait_for_line("rootstream: reconnected", timeout=5)
    running.wait_for_frames(shown + 30, timeout=5)
    result = running.join()
    assert result.reconnects == 1
    assert result.reason == "ran 8 s"
    # A new host process numbers its frames from the start again: the shown
    # numbers rise, fall once at the restart, and rise again.
    markers = result.markers
    assert len(markers) == result.frames_presented
    assert sum(1 for a, b in zip(markers, markers[1:], strict=False) if b <= a) == 1


def test_the_client_gives_up_after_the_reconnect_timeout(start_host):
    host = start_host(free_udp_port())
    running = RunningClient(("127.0.0.1", host.port), seconds=30, reconnect_timeout=1.0)
    running.wait_for_frames(10)
    host.proc.kill()
    killed = time.monotonic()
    result = running.join()
    gone = time.monotonic() - killed
    assert result.reason == "host went silent"
    assert any("did not come back within 1 s" in line for line in running.lines)
    assert PEER_TIMEOUT_S + 1.0 <= gone < PEER_TIMEOUT_S + 1.0 + 3.0


def test_a_host_that_says_bye_ends_the_session_even_when_reconnecting_is_on(start_host):
    host = start_host(free_udp_port())
    running = RunningClient(("127.0.0.1", host.port), seconds=30, reconnect_timeout=10)
    running.wait_for_frames(10)
    host.proc.terminate()  # SIGTERM: the host stops and says bye
    result = running.join(timeout=5)
    assert result.reason == "host said bye"
    assert result.reconnects == 0


def _region_bgr(display: str, rows: slice, cols: slice) -> np.ndarray:
    """Mean B, G, R of a region of a screen, grabbed independently of SDL."""
    with X11Capture(display=display, use_damage=False) as grab:
        frame = grab.grab(timeout=1.0)
        pixels = frame.pixels[:, : frame.width * 4].reshape(frame.height, frame.width, 4)
        return pixels[rows, cols, :3].reshape(-1, 3).mean(axis=0)


def _wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return value


@pytest.mark.skipif(shutil.which("xsetroot") is None,
                    reason="xsetroot missing (apt-get install x11-xserver-utils)")
@pytest.mark.skipif(find_font() is None, reason="no DejaVu Sans Mono for the overlay text "
                                                "(apt-get install fonts-dejavu-core)")
def test_the_window_keeps_the_last_picture_with_a_reconnecting_notice(xvfb_factory, tmp_path):
    """A real SDL window on Xvfb: the host dies, the picture stays, a notice covers a corner."""
    host_display, client_display = xvfb_factory(640, 480), xvfb_factory(640, 480)
    subprocess.run(["xsetroot", "-display", host_display.display, "-solid", "#ff0000"],
                   check=True, timeout=10)
    port = free_udp_port()
    host = HostProcess(port, "--source", "x11", "--fps", "30", "--bitrate", "2",
                       env=host_display.env(), log_dir=tmp_path)
    client = None
    centre, corner = (slice(160, 320), slice(213, 426)), (slice(8, 22), slice(8, 120))

    def red(region) -> bool:
        b, g, r = _region_bgr(client_display.display, *region)
        return r > 200 and g < 60 and b < 60

    try:
        host.wait_for("listening on")
        client = subprocess.Popen(
            rootstream_command("connect", f"127.0.0.1:{port}", "--present", "sdl",
                               "--seconds", "30", "--reconnect-timeout", "20", "--no-input"),
            env=client_display.env(SDL_VIDEODRIVER="x11"),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _wait(lambda: red(centre) and red(corner), 20, "the red picture never showed")
        host.proc.kill()
        _wait(lambda: not red(corner), PEER_TIMEOUT_S + 5, "no notice over the picture")
        assert red(centre), "the last picture must stay on screen while reconnecting"
    finally:
        err = ""
        if client is not None:
            client.terminate()
            try:
                _, err = client.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                client.kill()
                _, err = client.communicate()
        host.stop()
    assert "rootstream: reconnecting" in err, err
    assert "Traceback" not in err
