"""Clipboard sharing between two real X servers, with xclip as the other application.

Two Xvfb displays, one ClipboardService on each ("host" on A, "client" on
B), joined by a link that carries the real encoded CONTROL payloads (and can
lose some).  Text copied with xclip on one display pastes with xclip on the
other, both ways; 1 MiB + 1 byte is refused with a message; a lost datagram
is resent; and a text crosses once: nothing is echoed back.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from clipboard_scenarios import both_ways_once, large_text_then_one_byte_too_many, service_pair

from rootstream.clipboard.service import ClipboardService
from rootstream.protocol import Capability, Config
from rootstream.service import SessionInfo

pytestmark = pytest.mark.skipif(shutil.which("xclip") is None,
                                reason="xclip is not installed (scripts/setup.sh installs it)")


def copy(display, text: bytes) -> None:
    # xclip stays in the background serving the selection until another client takes it.
    subprocess.run(["xclip", "-selection", "clipboard", "-i"], input=text, env=display.env(),
                   check=True, timeout=10)


def paste(display) -> bytes:
    return subprocess.run(["xclip", "-selection", "clipboard", "-o"], env=display.env(),
                          capture_output=True, timeout=10).stdout


@pytest.fixture
def desks(xvfb_factory):
    a, b = xvfb_factory(320, 200), xvfb_factory(320, 200)
    with service_pair(a.display, b.display) as (host, client, logs):
        yield a, b, host, client, logs


def test_text_copied_on_one_side_pastes_on_the_other_both_ways_once(desks):
    a, b, host, client, logs = desks
    both_ways_once(host, client, lambda text: copy(a, text), lambda: paste(a),
                   lambda text: copy(b, text), lambda: paste(b))


def test_a_large_text_survives_losses_and_one_byte_too_many_is_refused(desks):
    a, b, host, client, logs = desks
    large_text_then_one_byte_too_many(host, client, logs, lambda text: copy(a, text),
                                      lambda: paste(b))


def test_nothing_is_shared_with_a_peer_that_did_not_ask(xvfb_factory):
    a = xvfb_factory(320, 200)
    logs: list[str] = []
    host = ClipboardService("host", a.display, log=logs.append)
    sent = []
    host.session_started(SessionInfo(("b", 1), 1, "b", Config(), Capability.H264),
                         lambda ptype, payload: sent.append(payload))
    copy(a, b"secret")
    time.sleep(0.3)
    host.tick(time.monotonic_ns())
    host.close()
    assert sent == [] and "does not share its clipboard" in logs[0]
