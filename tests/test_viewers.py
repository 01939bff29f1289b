"""Many viewers, one encode (`host --viewers N`), end to end on loopback.

Real processes and real sockets, every session encrypted with its own keys:
the host captures its own Xvfb display, and each viewer's real SDL window on
a display of its own shows the colour painted there; a client past the
limit is told the host is full.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from session_helpers import (
    HostProcess,
    SdlClient,
    paint_root,
    rootstream_command,
    wait_for_colour,
)

from rootstream.testing.impair import Impairment, LossyRelay

PROBE = Path(__file__).with_name("viewer_probe.py")
# xsetroot (scripts/setup.sh installs it) paints the host's display; a
# missing one fails the test rather than skipping it.
pytestmark = pytest.mark.slow


def _looks(colour, want_bgr) -> bool:
    return all(abs(float(c) - w) < 60 for c, w in zip(colour, want_bgr, strict=True))


def test_three_viewers_each_show_the_hosts_colours_and_a_fourth_is_told_full(
        xvfb_factory, tmp_path, udp_port):
    host_display = xvfb_factory(640, 480)
    paint_root(host_display.display, "#ff0000")
    host = HostProcess(udp_port, "--source", "x11", "--fps", "30", "--bitrate", "2",
                       "--viewers", "3", "--audio", "none", "--input", "none",
                       env=host_display.env(), log_dir=tmp_path)
    clients = []
    try:
        host.wait_for("listening on")
        displays = [xvfb_factory(640, 480) for _ in range(3)]
        for number, display in enumerate(displays, start=1):
            clients.append(SdlClient(udp_port, display, seconds=40))
            host.wait_for(f"{number} watching")
        for display in displays:
            red = wait_for_colour(display.display, (0, 0, 255))
            assert _looks(red, (0, 0, 255)), f"{display.display} shows {red} (BGR)"
        # The fourth client gets one small refusal and says why.
        full = subprocess.run(
            rootstream_command("connect", f"127.0.0.1:{udp_port}", "--present", "null",
                               "--frames", "5", "--no-audio"),
            capture_output=True, text=True, timeout=30)
        assert full.returncode != 0
        assert "the host is full" in full.stderr, full.stderr
        assert "--viewers" in full.stderr  # the hint says what to do
        # A change on the host's screen reaches every viewer: one capture, one encode.
        paint_root(host_display.display, "#0000ff")
        for display in displays:
            blue = wait_for_colour(display.display, (255, 0, 0))
            assert _looks(blue, (255, 0, 0)), f"{display.display} shows {blue} (BGR)"
    finally:
        errors = [client.stop() for client in clients]
        host.stop()
    assert not any("Traceback" in err for err in errors), errors
    log = host.log()
    assert "3 watching" in log and "refused_full=1" in log, log


def _probe(port: int, seconds: float) -> subprocess.Popen:
    """A viewer process (tests/viewer_probe.py) that prints what it saw as JSON."""
    return subprocess.Popen([sys.executable, str(PROBE), "127.0.0.1", str(port), str(seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(probe: subprocess.Popen) -> dict:
    out, err = probe.communicate(timeout=60)
    assert probe.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _pattern_host(port: int, tmp_path, *args: str) -> HostProcess:
    host = HostProcess(port, "--source", "test", "--size", "640x360", "--fps", "30",
                       "--bitrate", "2", "--audio", "none", "--input", "none", *args,
                       log_dir=tmp_path)
    host.wait_for("listening on")
    return host


def test_a_lossy_viewer_and_a_killed_one_cost_the_healthy_viewers_no_frames(tmp_path,
                                                                           udp_port):
    host = _pattern_host(udp_port, tmp_path, "--viewers", "4")
    relay = LossyRelay(upstream=("127.0.0.1", udp_port), to_client=Impairment(loss=0.10),
                       to_host=Impairment(loss=0.10), seed=5)
    try:
        with relay:
            healthy = [_probe(udp_port, 8) for _ in range(2)]
            host.wait_for("2 watching")
            lossy = _probe(relay.address[1], 6)  # its datagrams pass the relay both ways
            host.wait_for("3 watching")
            doomed = _probe(udp_port, 30)
            host.wait_for("4 watching")
            time.sleep(1.5)
            doomed.send_signal(signal.SIGKILL)  # no bye: the host must notice the silence
            doomed.communicate(timeout=10)
            seen = [_result(probe) for probe in healthy]
            lossy_seen = _result(lossy)
        host.wait_for("went silent; the others go on")
    finally:
        host.stop()
    for got in seen:
        sent = got["received"] + got["lost"]
        assert sent > 8 * 30 * 0.6, got
        assert got["presented"] >= 0.98 * sent, got
        assert got["intact"], got
    # The lossy viewer kept watching, with intact pictures only.
    assert relay.counters["to_client"].dropped > 0
    assert lossy_seen["presented"] > 0 and lossy_seen["intact"], lossy_seen


def test_a_viewer_joining_mid_stream_waits_for_a_refresh_cycle_not_a_keyframe(tmp_path,
                                                                            udp_port):
    host = _pattern_host(udp_port, tmp_path, "--viewers", "2", "--refresh-ms", "200")
    try:
        first = _probe(udp_port, 7)
        host.wait_for("1 watching")
        time.sleep(2)  # the first viewer is streaming
        joining = _result(_probe(udp_port, 3))
        watching = _result(first)
    finally:
        host.stop()
    # The joining viewer showed intact pictures, starting at a refresh cycle...
    assert joining["presented"] > 30, joining
    assert joining["intact"] and joining["resumed_at_refresh"] >= 1, joining
    assert joining["keyframes_received"] == 0 and joining["idr_requests"] == 0, joining
    # ...and not one keyframe reached the viewer already watching (counted on
    # its wire), nor left the host after the stream's first.
    assert watching["keyframes_received"] <= 1, watching
    assert watching["presented"] >= 0.98 * (watching["received"] + watching["lost"]) - 15
    keyframes = [int(n) for n in re.findall(r"keyframes_sent=(\d+)", host.log())]
    assert keyframes and max(keyframes) == 1, host.log()
    assert re.search(r"refresh_cycles=\d+", host.log())
