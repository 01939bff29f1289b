"""Clipboard transfers datagram by datagram: order, loss, replacement, limits; and the X ABI."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from abi_check import layouts

from rootstream.clipboard import x11
from rootstream.clipboard.transfer import CHUNK, MAX_TEXT, RESEND_NS, WINDOW, Incoming, Outgoing
from rootstream.protocol.control import ClipboardAck, ClipboardData

MS = 1_000_000


def run(outgoing: Outgoing, incoming: Incoming, lose=lambda chunk: False, ticks: int = 1000):
    """Tick every 50 ms until the receiver has the text; returns (text, ticks used)."""
    for tick in range(ticks):
        now = tick * 50 * MS
        for chunk in outgoing.due(now):
            if lose(chunk):
                continue
            ack, text = incoming.on_data(chunk)
            outgoing.on_ack(ack, now)
            if text is not None:
                return text, tick
    raise AssertionError("the text never arrived")


def test_a_text_arrives_whole_at_a_bounded_rate():
    data = bytes(random.Random(1).randrange(256) for _ in range(100_000))
    outgoing = Outgoing(1, data)
    first = outgoing.due(0)
    assert sum(len(c.data) for c in first) == WINDOW and all(len(c.data) <= CHUNK for c in first)
    text, ticks = run(Outgoing(1, data), Incoming())
    assert text == data and ticks == len(data) // WINDOW  # one window per tick


def test_lost_chunks_are_resent_and_the_text_arrives_once():
    data = b"x" * 50_000
    rng = random.Random(3)
    outgoing, incoming = Outgoing(9, data), Incoming()
    text, _ = run(outgoing, incoming, lose=lambda chunk: rng.random() < 0.2)
    assert text == data and outgoing.resends > 0 and outgoing.done
    assert incoming.on_data(ClipboardData(9, len(data), 0, data[:CHUNK])) == (
        ClipboardAck(9, len(data)), None)  # a late duplicate: acked, not delivered again


def test_a_lost_tail_is_resent_after_the_timeout():
    outgoing, incoming = Outgoing(2, b"abc"), Incoming()
    assert outgoing.due(0) == [ClipboardData(2, 3, 0, b"abc")]  # lost
    assert outgoing.due(RESEND_NS // 2) == []
    (again,) = outgoing.due(RESEND_NS)
    ack, text = incoming.on_data(again)
    assert text == b"abc" and ack == ClipboardAck(2, 3)


def test_a_newer_copy_replaces_the_one_in_flight_and_empty_text_is_one_chunk():
    incoming = Incoming()
    incoming.on_data(ClipboardData(1, 4000, 0, b"a" * CHUNK))
    assert incoming.on_data(ClipboardData(2, 0, 0, b"")) == (ClipboardAck(2, 0), b"")
    assert incoming.on_data(ClipboardData(1, 4000, CHUNK, b"a" * CHUNK))[1] is None
    outgoing = Outgoing(5, b"")
    assert outgoing.due(0) == [ClipboardData(5, 0, 0, b"")]
    outgoing.on_ack(ClipboardAck(5, 0), 0)
    assert outgoing.done and outgoing.due(1) == []


def test_limits():
    with pytest.raises(ValueError):
        Outgoing(1, b"x" * (MAX_TEXT + 1))
    incoming = Incoming()
    assert incoming.on_data(ClipboardData(1, MAX_TEXT + 1, 0, b"x")) == (None, None)
    assert incoming.refused == 1


def test_selection_structs_match_the_x_headers(tmp_path):
    headers = ("X11/Xlib.h", "X11/extensions/Xfixes.h")
    if shutil.which("gcc") is None or not all(Path("/usr/include", h).exists() for h in headers):
        pytest.skip("gcc or libx11-dev/libxfixes-dev headers are missing")
    ours, native = layouts(x11.ffi, ("XSelectionRequestEvent", "XSelectionEvent",
                                     "XFixesSelectionNotifyEvent", "XPropertyEvent"),
                           headers, tmp_path)
    assert ours == native


def test_a_peer_sending_text_that_is_not_utf8_pastes_nothing():
    from rootstream.clipboard.service import ClipboardService
    from rootstream.protocol import Capability, Config
    from rootstream.service import SessionInfo

    class Desktop:
        def __init__(self) -> None:
            self.texts: list[bytes] = []

        def set_text(self, data: bytes) -> None:
            self.texts.append(data)

        def close(self) -> None:
            pass

    desktop = Desktop()
    service = ClipboardService("client", log=lambda line: None,
                               opener=lambda display, on_change: desktop)
    acks = []
    service.session_started(SessionInfo(("h", 1), 1, "h",
                                        Config(capabilities=Capability.CLIPBOARD)),
                            lambda ptype, payload: acks.append(payload))
    service.on_control(ClipboardData(1, 2, 0, b"\xff\xfe"))
    service.on_control(ClipboardData(2, 2, 0, "é".encode()))
    assert desktop.texts == ["é".encode()] and service.counters["not_utf8"] == 1
    assert len(acks) == 2  # both acknowledged: the sender stops resending either
    service.close()
