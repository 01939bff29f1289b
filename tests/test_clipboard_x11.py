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
import threading
import time

import pytest

from rootstream.clipboard.service import ClipboardService
from rootstream.clipboard.transfer import MAX_TEXT
from rootstream.protocol import Capability, Config, PacketType, decode_control
from rootstream.protocol.control import ClipboardData
from rootstream.session import SessionInfo

pytestmark = pytest.mark.skipif(shutil.which("xclip") is None,
                                reason="xclip is not installed (scripts/setup.sh installs it)")


class Link:
    """Both directions between two services; ``drop(n)`` loses every nth data chunk."""

    def __init__(self, a: ClipboardService, b: ClipboardService, drop_every: int = 0):
        self.ends = (a, b)
        self.drop_every = drop_every
        self.sent = {id(a): [], id(b): []}  # decoded messages each end sent
        self._count = 0
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)

    def sender(self, source: ClipboardService, target: ClipboardService):
        def send(ptype: PacketType, payload: bytes) -> None:
            assert ptype == PacketType.CONTROL
            message = decode_control(payload)
            self.sent[id(source)].append(message)
            if isinstance(message, ClipboardData) and self.drop_every:
                self._count += 1
                if self._count % self.drop_every == 0:
                    return  # lost on the way
            target.on_control(message)
        return send

    def start(self) -> None:
        a, b = self.ends
        caps = Capability.CLIPBOARD
        a.session_started(SessionInfo(("b", 1), 1, "b", Config(), caps), self.sender(a, b))
        b.session_started(SessionInfo(("a", 1), 1, "a", Config(capabilities=caps)),
                          self.sender(b, a))
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(0.02):
            for end in self.ends:
                end.tick(time.monotonic_ns())

    def stop(self) -> None:
        self._stop.set()
        self._ticker.join()
        for end in self.ends:
            end.close()


def copy(display, text: bytes) -> None:
    # xclip stays in the background serving the selection until another client takes it.
    subprocess.run(["xclip", "-selection", "clipboard", "-i"], input=text, env=display.env(),
                   check=True, timeout=10)


def paste(display) -> bytes:
    return subprocess.run(["xclip", "-selection", "clipboard", "-o"], env=display.env(),
                          capture_output=True, timeout=10).stdout


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def desks(xvfb_factory):
    a, b = xvfb_factory(320, 200), xvfb_factory(320, 200)
    logs: list[str] = []
    host = ClipboardService("host", a.display, log=logs.append)
    client = ClipboardService("client", b.display, log=logs.append)
    yield a, b, host, client, logs
    host.close()
    client.close()


def test_text_copied_on_one_side_pastes_on_the_other_both_ways_once(desks):
    a, b, host, client, logs = desks
    link = Link(host, client)
    link.start()
    try:
        copy(a, "héllo from the host ✓".encode())
        assert wait_for(lambda: paste(b) == "héllo from the host ✓".encode())
        copy(b, b"and back from the client")
        assert wait_for(lambda: paste(a) == b"and back from the client")
        time.sleep(0.5)  # time for any echo to show
        assert host.counters["texts_sent"] == 1 and client.counters["texts_sent"] == 1
        assert host.received == [b"and back from the client"]
        assert client.received == ["héllo from the host ✓".encode()]
    finally:
        link.stop()


def test_a_large_text_survives_losses_and_one_byte_too_many_is_refused(desks):
    a, b, host, client, logs = desks
    link = Link(host, client, drop_every=7)
    link.start()
    try:
        big = (b"0123456789abcdef" * (MAX_TEXT // 16))[:MAX_TEXT]
        copy(a, big)
        assert wait_for(lambda: client.received == [big], timeout=30)
        assert paste(b) == big
        copy(a, big + b"!")
        assert wait_for(lambda: host.counters["refused_too_long"] == 1)
        assert any("more than 1048576 bytes" in line for line in logs)
        time.sleep(0.3)
        assert client.received == [big]
        assert host.counters["texts_sent"] == 1
    finally:
        link.stop()


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
