"""What both clipboard backends must do, written once: the X11 and Wayland tests run it.

A Link joins two ClipboardServices with the real encoded CONTROL payloads
(and can lose some); the scenarios take the desktop's copy and paste
commands of each side, so the same steps run against xclip on Xvfb and
wl-copy/wl-paste on sway.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from rootstream.clipboard.service import ClipboardService
from rootstream.clipboard.transfer import MAX_TEXT
from rootstream.protocol import Capability, Config, PacketType, decode_control
from rootstream.protocol.control import ClipboardData
from rootstream.service import SessionInfo


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


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


@contextmanager
def service_pair(host_display: str | None, client_display: str | None):
    """(host, client, logs): a ClipboardService on each display (None: the session's own)."""
    logs: list[str] = []
    host = ClipboardService("host", host_display, log=logs.append)
    client = ClipboardService("client", client_display, log=logs.append)
    try:
        yield host, client, logs
    finally:
        host.close()
        client.close()


def both_ways_once(host, client, copy_on_host, paste_on_host, copy_on_client,
                   paste_on_client) -> None:
    """Text copied on each side pastes on the other, and each crosses exactly once."""
    link = Link(host, client)
    link.start()
    try:
        copy_on_host("héllo from the host ✓".encode())
        assert wait_for(lambda: paste_on_client() == "héllo from the host ✓".encode())
        copy_on_client(b"and back from the client")
        assert wait_for(lambda: paste_on_host() == b"and back from the client")
        time.sleep(0.5)  # time for any echo to show
        assert host.counters["texts_sent"] == 1 and client.counters["texts_sent"] == 1
        assert host.received == [b"and back from the client"]
        assert client.received == ["héllo from the host ✓".encode()]
    finally:
        link.stop()


def large_text_then_one_byte_too_many(host, client, logs, copy_on_host,
                                      paste_on_client) -> None:
    """1 MiB crosses a link that loses every 7th chunk; 1 MiB + 1 byte is refused, said once."""
    link = Link(host, client, drop_every=7)
    link.start()
    try:
        big = (b"0123456789abcdef" * (MAX_TEXT // 16))[:MAX_TEXT]
        copy_on_host(big)
        assert wait_for(lambda: client.received == [big], timeout=30)
        assert paste_on_client() == big
        copy_on_host(big + b"!")
        assert wait_for(lambda: host.counters["refused_too_long"] == 1)
        assert any("more than 1048576 bytes" in line for line in logs)
        time.sleep(0.3)
        assert client.received == [big]
        assert host.counters["texts_sent"] == 1
    finally:
        link.stop()
