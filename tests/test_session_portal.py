"""Wayland end to end: `rootstream host --source portal` on a real headless sway,
a `rootstream connect` client showing it in an SDL window on Xvfb."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from session_helpers import HostProcess, rootstream_command, wait_for_colour

pytestmark = pytest.mark.slow


def _stop(client: subprocess.Popen) -> str:
    client.terminate()
    try:
        _, err = client.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        client.kill()
        _, err = client.communicate()
    return err or ""


def test_the_sway_screen_streams_to_a_client_and_a_repaint_shows(wayland_desktop, xvfb_factory,
                                                                 tmp_path, udp_port):
    client_display = xvfb_factory(640, 480)
    # The fixture pointed this process at the desktop; the host inherits that and
    # shares the client's private config dir (its identity), as on one machine.
    painter = wayland_desktop.painter()
    painter.fill(0xFF0000)
    host = HostProcess(udp_port, "--source", "portal", "--fps", "30", "--bitrate", "4",
                       env=dict(os.environ), log_dir=tmp_path)
    client = None
    try:
        host.wait_for("listening on")
        assert "rootstream host: portal 640x480" in host.log()
        client = subprocess.Popen(
            rootstream_command("connect", f"127.0.0.1:{udp_port}", "--present", "sdl",
                               "--seconds", "30"),
            env=client_display.env(SDL_VIDEODRIVER="x11"),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # The screen was painted before the client came: force=True's kept picture.
        red = wait_for_colour(client_display.display, (0, 0, 255))
        assert red[2] > 200 and red[0] < 60 and red[1] < 60, f"client shows {red} (BGR)"
        painter.fill(0x0000FF)  # a repaint on the Wayland desktop reaches the client
        blue = wait_for_colour(client_display.display, (255, 0, 0))
        assert blue[0] > 200 and blue[2] < 60, f"client shows {blue} (BGR)"
    finally:
        painter.close()
        if client is not None:
            assert "Traceback" not in _stop(client)
        host.stop()
    assert "client 127.0.0.1" in host.log()


def test_the_host_says_so_when_the_compositor_ends_the_session(wayland_desktop, xvfb_factory,
                                                               tmp_path, udp_port):
    client_display = xvfb_factory(320, 240)
    painter = wayland_desktop.painter()
    painter.fill(0x00FF00)
    host = HostProcess(udp_port, "--source", "portal", "--fps", "30", "--bitrate", "2",
                       env=dict(os.environ), log_dir=tmp_path)
    client = None
    try:
        host.wait_for("listening on")
        client = subprocess.Popen(
            rootstream_command("connect", f"127.0.0.1:{udp_port}", "--present", "sdl",
                               "--seconds", "30"),
            env=client_display.env(SDL_VIDEODRIVER="x11"),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_for_colour(client_display.display, (0, 255, 0))
        wayland_desktop.kill("xdpw")  # the compositor's portal backend goes away
        started = time.monotonic()
        host.wait_for("capture stopped: the screen-sharing session ended", timeout=10)
        assert time.monotonic() - started < 5
        assert "start the host again" in host.log()
        # The host ends, non-zero (a service manager restarts it), rather than
        # serve a frozen picture.
        assert host.proc.wait(10) == 1
    finally:
        painter.close()
        if client is not None:
            _stop(client)
        host.stop()
