"""Xvfb end to end: a picture drawn on the host's display appears in the
client's real SDL window on another display."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import numpy as np
import pytest
from session_helpers import HostProcess, rootstream_command

from rootstream.capture.x11 import X11Capture

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("xsetroot") is None,
                       reason="xsetroot missing (apt-get install x11-xserver-utils)"),
]


def _paint_root(display: str, colour: str) -> None:
    subprocess.run(["xsetroot", "-display", display, "-solid", colour], check=True, timeout=10)


def _centre_colour(display: str) -> np.ndarray:
    """Mean B, G, R of the middle of the client's screen, grabbed independently of SDL."""
    with X11Capture(display=display, use_damage=False) as grab:
        frame = grab.grab(timeout=1.0)
        h, w = frame.height, frame.width
        pixels = frame.pixels[:, : w * 4].reshape(h, w, 4)
        return pixels[h // 3: 2 * h // 3, w // 3: 2 * w // 3, :3].reshape(-1, 3).mean(axis=0)


def _wait_for_colour(display: str, want_bgr, timeout: float = 15.0) -> np.ndarray:
    deadline = time.monotonic() + timeout
    while True:
        colour = _centre_colour(display)
        if np.all(np.abs(colour - np.array(want_bgr)) < 40):
            return colour
        if time.monotonic() > deadline:
            return colour
        time.sleep(0.2)


def test_a_picture_drawn_on_the_host_appears_in_the_client_window(xvfb_factory, tmp_path,
                                                                   udp_port):
    host_display = xvfb_factory(640, 480)
    client_display = xvfb_factory(640, 480)
    _paint_root(host_display.display, "#ff0000")
    host = HostProcess(udp_port, "--source", "x11", "--fps", "30", "--bitrate", "4",
                       env=host_display.env(), log_dir=tmp_path)
    client = None
    try:
        host.wait_for("listening on")
        client = subprocess.Popen(
            rootstream_command("connect", f"127.0.0.1:{udp_port}", "--present", "sdl",
                               "--seconds", "30"),
            env=client_display.env(SDL_VIDEODRIVER="x11"),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        red = _wait_for_colour(client_display.display, (0, 0, 255))
        assert red[2] > 200 and red[0] < 60 and red[1] < 60, f"client shows {red} (BGR)"
        # A change on the host's screen reaches the client: damage-driven capture.
        _paint_root(host_display.display, "#0000ff")
        blue = _wait_for_colour(client_display.display, (255, 0, 0))
        assert blue[0] > 200 and blue[2] < 60, f"client shows {blue} (BGR)"
    finally:
        if client is not None:
            client.terminate()
            try:
                _, err = client.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                client.kill()
                err = ""
            assert "Traceback" not in (err or "")
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
