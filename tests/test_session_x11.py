"""Xvfb end to end: a picture drawn on the host's display appears in the
client's real SDL window on another display."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from session_helpers import (
    HostProcess,
    SdlClient,
    paint_root,
    rootstream_command,
    wait_for_colour,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("xsetroot") is None,
                       reason="xsetroot missing (apt-get install x11-xserver-utils)"),
]


def test_a_picture_drawn_on_the_host_appears_in_the_client_window(xvfb_factory, tmp_path,
                                                                   udp_port):
    host_display = xvfb_factory(640, 480)
    client_display = xvfb_factory(640, 480)
    paint_root(host_display.display, "#ff0000")
    host = HostProcess(udp_port, "--source", "x11", "--fps", "30", "--bitrate", "4",
                       env=host_display.env(), log_dir=tmp_path)
    client = None
    try:
        host.wait_for("listening on")
        client = SdlClient(udp_port, client_display)
        red = wait_for_colour(client_display.display, (0, 0, 255))
        assert red[2] > 200 and red[0] < 60 and red[1] < 60, f"client shows {red} (BGR)"
        # A change on the host's screen reaches the client: damage-driven capture.
        paint_root(host_display.display, "#0000ff")
        blue = wait_for_colour(client_display.display, (255, 0, 0))
        assert blue[0] > 200 and blue[2] < 60, f"client shows {blue} (BGR)"
    finally:
        if client is not None:
            assert "Traceback" not in client.stop()
        host.stop()
    assert "client 127.0.0.1" in host.log()


def test_sdl_client_runs_with_the_dummy_video_driver(tmp_path, udp_port):
    host = HostProcess(udp_port, "--source", "test", "--size", "640x360", "--fps", "30",
                       log_dir=tmp_path)
    try:
        host.wait_for("listening on")
        env = dict(os.environ, SDL_VIDEODRIVER="dummy")
        env.pop("DISPLAY", None)
        done = subprocess.run(
            rootstream_command("connect", f"127.0.0.1:{udp_port}", "--present", "sdl",
                               "--frames", "20"),
            env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "showing with sdl" in done.stderr
    finally:
        host.stop()
