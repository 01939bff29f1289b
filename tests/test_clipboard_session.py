"""Clipboard sharing end to end: a real `rootstream host --clipboard` and a real Client.

The host process watches Xvfb A (its $DISPLAY), the client Xvfb B; text
copied with xclip on either side pastes on the other, through the real
hello/config negotiation, the real session loops and UDP on loopback.
(tests/test_clipboard_wayland.py runs the same with the host on sway.)
"""

from __future__ import annotations

import shutil
import threading
import time

import pytest
from clipboard_scenarios import wait_for
from session_helpers import HostProcess
from test_clipboard_x11 import copy, paste

from rootstream.client import Client, ClientOptions

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("xclip") is None, reason="xclip is not installed")]


def cross_a_real_session(tmp_path, udp_port, monkeypatch, host_env, client_display,
                         copy_on_host, paste_on_host) -> HostProcess:
    """Copy on the host's desktop, paste on the client's X display, and back."""
    host = HostProcess(udp_port, "--insecure", "--source", "test", "--size", "640x360",
                       "--fps", "10", "--bitrate", "1", "--input", "none", "--audio", "none",
                       "--clipboard", env=host_env, log_dir=tmp_path)
    try:
        host.wait_for("listening on")
        monkeypatch.setenv("DISPLAY", client_display.display)
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)  # the client's clipboard is X11
        client = Client(ClientOptions(host=("127.0.0.1", udp_port), present="null",
                                      insecure=True, input=False, audio=False, clipboard=True,
                                      seconds=60, stats_interval=60), log=lambda line: None)
        runner = threading.Thread(target=client.run, daemon=True)
        runner.start()
        try:
            assert client._configured.wait(20), host.log()
            # The host watches its clipboard from its session's start (after the
            # config it sent): a copy made before that is not a change it saw.
            host.wait_for("connected")
            time.sleep(0.5)
            copy_on_host("from the host ✓".encode())
            assert wait_for(lambda: paste(client_display) == "from the host ✓".encode(), 15), \
                host.log()
            copy(client_display, b"from the client")
            assert wait_for(lambda: paste_on_host() == b"from the client", 15), host.log()
        finally:
            client.stop()
            runner.join(10)
    finally:
        host.stop()
    return host


def test_copy_and_paste_cross_a_real_session_both_ways(tmp_path, udp_port, xvfb_factory,
                                                       monkeypatch):
    a, b = xvfb_factory(320, 200), xvfb_factory(320, 200)
    host = cross_a_real_session(tmp_path, udp_port, monkeypatch, a.env(WAYLAND_DISPLAY=""), b,
                                lambda text: copy(a, text), lambda: paste(a))
    assert "clipboard: X11" in host.log()
