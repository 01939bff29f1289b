"""Many viewers, one encode (`host --viewers N`), end to end on loopback.

Real processes and real sockets, every session encrypted with its own keys:
the host captures its own Xvfb display, and each viewer's real SDL window on
a display of its own shows the colour painted there; a client past the
limit is told the host is full.
"""

from __future__ import annotations

import subprocess

import pytest
from session_helpers import (
    HostProcess,
    SdlClient,
    paint_root,
    rootstream_command,
    wait_for_colour,
)

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
