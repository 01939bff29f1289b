"""Wayland end to end: `rootstream host --source portal` on a real headless sway,
a `rootstream connect` client showing it in an SDL window on Xvfb."""

from __future__ import annotations

import contextlib
import os
import time

import pytest
from session_helpers import HostProcess, SdlClient, wait_for_colour

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def portal_session(desktop, client_display, log_dir, port: int, first_rgb: int):
    """The painter showing ``first_rgb``, a portal host, and an SDL client watching it.

    The fixture pointed this process at the desktop; the host inherits that and
    shares the client's private config dir (its identity), as on one machine.
    """
    painter = desktop.painter()
    painter.fill(first_rgb)
    host = HostProcess(port, "--source", "portal", "--fps", "30", "--bitrate", "4",
                       env=dict(os.environ), log_dir=log_dir)
    client = None
    try:
        host.wait_for("listening on")
        client = SdlClient(port, client_display)
        yield painter, host, client
    finally:
        painter.close()
        if client is not None:
            client.stop()
        host.stop()


def test_the_sway_screen_streams_to_a_client_and_a_repaint_shows(wayland_desktop, xvfb_factory,
                                                                 tmp_path, udp_port):
    shown = xvfb_factory(640, 480)
    with portal_session(wayland_desktop, shown, tmp_path, udp_port, 0xFF0000) as (
            painter, host, client):
        assert "rootstream host: portal 640x480" in host.log()
        # The screen was painted before the client came: force=True's kept picture.
        red = wait_for_colour(shown.display, (0, 0, 255))
        assert red[2] > 200 and red[0] < 60 and red[1] < 60, f"client shows {red} (BGR)"
        painter.fill(0x0000FF)  # a repaint on the Wayland desktop reaches the client
        blue = wait_for_colour(shown.display, (255, 0, 0))
        assert blue[0] > 200 and blue[2] < 60, f"client shows {blue} (BGR)"
        assert "Traceback" not in client.stop()
    assert "client 127.0.0.1" in host.log()


def test_the_host_says_so_when_the_compositor_ends_the_session(wayland_desktop, xvfb_factory,
                                                               tmp_path, udp_port):
    shown = xvfb_factory(320, 240)
    with portal_session(wayland_desktop, shown, tmp_path, udp_port, 0x00FF00) as (_, host, _c):
        wait_for_colour(shown.display, (0, 255, 0))
        wayland_desktop.kill("xdpw")  # the compositor's portal backend goes away
        started = time.monotonic()
        host.wait_for("capture stopped: the screen-sharing session ended", timeout=10)
        assert time.monotonic() - started < 5
        assert "start the host again" in host.log()
        # The host ends, non-zero (a service manager restarts it), rather than
        # serve a frozen picture.
        assert host.proc.wait(10) == 1
