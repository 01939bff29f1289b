"""Clipboard sharing, one service for both ends (``--clipboard`` on host and client).

Off by default: a clipboard can hold passwords.  When on, the service
announces Capability.CLIPBOARD (hello or config) and shares only when the
peer announced it too, so no clipboard message ever reaches a peer that does
not know the kinds.

A local change (the desktop's clipboard watcher, clipboard.x11 or .wayland,
on its own thread) starts one Outgoing transfer; ``tick`` (every ~50 ms on
the session loop's thread) sends what is due, behind input and video and at
a bounded rate (rootstream.clipboard.transfer).  Chunks and acks arrive as
CONTROL messages.  A complete text from the peer is put on the local
clipboard and remembered, and the change that causes locally is never sent
back (the watcher does not report our own ownership; a text equal to the one
just received or sent is not sent again): one copy crosses once.

A text over MAX_TEXT is refused where it was copied, with one log line.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable

from rootstream.clipboard.transfer import MAX_TEXT, Incoming, Outgoing
from rootstream.errors import RootStreamError
from rootstream.protocol import Capability, PacketType
from rootstream.protocol.control import ClipboardAck, ClipboardData, encode_control
from rootstream.session import ClientService, Sender, SessionInfo


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _open_desktop(display, on_change, log):
    from rootstream.clipboard.desktop import open_desktop_clipboard

    return open_desktop_clipboard(display, on_change, MAX_TEXT, log=log)


class ClipboardService(ClientService):
    """Share the clipboard of ``display`` (default $DISPLAY) with the session's peer.

    ``side`` is "host" (the peer's bits are the hello's) or "client" (the config's).
    """

    name = "clipboard"
    offers = wants = Capability.CLIPBOARD

    def __init__(self, side: str, display: str | None = None, *,
                 log: Callable[[str], None] = print,
                 opener: Callable[..., object] | None = None) -> None:
        self._side = side
        self._display = display
        self._log = log
        # opener(display, on_change) -> watcher; by default the session's own
        # clipboard, Wayland's or X11's (rootstream.clipboard.desktop).
        self._opener = opener or (lambda display, on_change: _open_desktop(display, on_change, log))
        self._desktop = None  # the desktop's watcher, opened at the first session
        self._unavailable = ""
        self._lock = threading.Lock()
        self._send: Sender | None = None
        self._outgoing: Outgoing | None = None
        self._incoming = Incoming()
        self._transfer = secrets.randbits(32)
        self._last_text: bytes | None = None  # last sent or received: never sent (again)
        self.counters: Counter[str] = Counter()
        self.received: list[bytes] = []  # texts put on the local clipboard (tests, logs)

    # -- hooks ------------------------------------------------------------------------

    def session_started(self, session: SessionInfo, send: Sender) -> None:
        peer = (session.peer_capabilities if self._side == "host"
                else session.config.capabilities)
        if not peer & Capability.CLIPBOARD:
            self._log("rootstream: the peer does not share its clipboard (start it with "
                      "--clipboard too)")
            return
        if self._desktop is None and not self._unavailable:
            try:
                self._desktop = self._opener(self._display, self._local_change)
            except RootStreamError as exc:
                self._unavailable = str(exc)
                self._log(f"rootstream: clipboard not shared: {exc}")
                return
        with self._lock:
            self._send = send

    def on_control(self, message: object) -> None:
        if isinstance(message, ClipboardData):
            self._on_data(message)
        elif isinstance(message, ClipboardAck):
            with self._lock:
                if self._outgoing is not None:
                    self._outgoing.on_ack(message, time.monotonic_ns())

    def tick(self, now_ns: int) -> None:
        guard = getattr(self._desktop, "guard", None)  # the watcher's thread (stage.py)
        if guard is not None:
            guard.check()
        with self._lock:
            send, outgoing = self._send, self._outgoing
            chunks = outgoing.due(now_ns) if send is not None and outgoing is not None else []
        for chunk in chunks:
            send(PacketType.CONTROL, encode_control(chunk))
            self.counters["chunks_sent"] += 1

    def session_ended(self, reason: str) -> None:
        with self._lock:
            self._send = None
            self._outgoing = None
            self._incoming = Incoming()

    def close(self) -> None:
        self.session_ended("closed")
        desktop, self._desktop = self._desktop, None
        if desktop is not None:
            desktop.close()

    # -- helpers ------------------------------------------------------------------------

    def _on_data(self, chunk: ClipboardData) -> None:
        with self._lock:
            send = self._send
            if send is None:
                return
            ack, text = self._incoming.on_data(chunk)
            if text is not None:
                self._last_text = text
        if ack is not None:
            send(PacketType.CONTROL, encode_control(ack))
        if text is not None and not _is_utf8(text):
            self.counters["not_utf8"] += 1  # a peer that breaks the rule: nothing pasted
            return
        if text is not None and self._desktop is not None:
            self.received.append(text)
            self.counters["texts_received"] += 1
            self._desktop.set_text(text)

    def _local_change(self, data: bytes) -> None:
        """The desktop's clipboard changed (the watcher's thread)."""
        if len(data) > MAX_TEXT:
            self.counters["refused_too_long"] += 1
            self._log(f"rootstream: the clipboard holds more than {MAX_TEXT} bytes; "
                      "not shared (copy less text)")
            return
        if not _is_utf8(data):
            self.counters["not_utf8"] += 1
            return
        with self._lock:
            if data == self._last_text or self._send is None:
                return  # what we just pasted or sent, or no session: never echoed
            self._last_text = data
            self._transfer = (self._transfer + 1) & 0xFFFFFFFF
            self._outgoing = Outgoing(self._transfer, data)
            self.counters["texts_sent"] += 1
