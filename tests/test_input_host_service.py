"""The host's input service, datagram by datagram, over the record injector."""

from __future__ import annotations

import pytest

from rootstream.errors import InputError
from rootstream.input.host_service import HostInput, injector_options
from rootstream.protocol import Header, PacketType
from rootstream.protocol.input import ButtonEvent, HeldSnapshot, KeyEvent, encode_input
from rootstream.stats import StatsCollector

KEY_A, KEY_B, BTN_LEFT = 30, 48, 0x110


def header(sequence: int, ptype: PacketType = PacketType.INPUT) -> Header:
    return Header(ptype, sequence, 0, 0, 0)


@pytest.fixture
def service():
    stats = StatsCollector("host", ())
    lines: list[str] = []
    svc = HostInput("record", stats=stats, log=lines.append)
    svc.stats, svc.lines = stats, lines
    yield svc
    svc.close()


def test_input_is_injected_at_once_and_released_when_the_session_ends(service):
    service.session_started(None, None)
    injector = service.session.injector
    assert service.lines == ["rootstream host: input injected with record"]
    assert service.handle(header(1), memoryview(encode_input(
        [KeyEvent(KEY_A, True), ButtonEvent(BTN_LEFT, True)])))
    assert injector.events == [KeyEvent(KEY_A, True), ButtonEvent(BTN_LEFT, True)]
    service.session_ended("timeout")
    assert injector.held_keys == set() and injector.held_buttons == set()
    assert injector.events[-2:] == [KeyEvent(KEY_A, False), ButtonEvent(BTN_LEFT, False)]
    assert service.stats.totals["input_events"] == 2
    # The next session reuses the injector and starts its sequence afresh.
    service.session_started(None, None)
    assert service.session.injector is injector
    assert service.handle(header(0), memoryview(encode_input([KeyEvent(KEY_B, True)])))
    assert injector.held_keys == {KEY_B}


def test_stale_malformed_and_between_sessions_are_dropped_and_counted(service):
    assert service.handle(header(5), memoryview(encode_input([KeyEvent(KEY_A, True)])))
    assert service.session is None  # nothing opened before a session
    service.session_started(None, None)
    assert service.handle(header(5), memoryview(encode_input([KeyEvent(KEY_A, True)])))
    assert service.handle(header(4), memoryview(encode_input([HeldSnapshot()])))  # stale
    assert service.handle(header(6), memoryview(b"\x01\x01"))  # truncated
    assert service.session.injector.held_keys == {KEY_A}
    service.tick(10**18)
    assert service.stats.totals == {"input_events": 1, "input_dropped": 3}
    assert not service.handle(header(7, PacketType.AUDIO), memoryview(b"x"))


def test_no_injector_is_logged_once_and_the_stream_goes_on():
    lines: list[str] = []

    def opener(name, **options):
        raise InputError("no input injector could be opened", details=["uinput: absent"])

    service = HostInput("auto", log=lines.append, opener=opener)
    for _ in range(2):
        service.session_started(None, None)
        assert service.handle(header(1), memoryview(encode_input([KeyEvent(KEY_A, True)])))
        service.session_ended("bye")
    service.close()
    assert lines == ["rootstream host: input disabled: no input injector could be opened; "
                     "uinput: absent"]
    assert service.counters["no_injector"] == 2


def test_the_config_says_input_only_when_an_injector_opens():
    lines: list[str] = []

    def failing(name, **options):
        raise InputError("no input injector could be opened", details=["uinput: absent"])

    service = HostInput("auto", log=lines.append, opener=failing)
    # Asked at every hello (before the session starts), said once.
    assert not service.can_inject() and not service.can_inject()
    assert len(lines) == 1
    working = HostInput("record", log=lines.append)
    assert working.can_inject() and working.session is not None
    working.close()


def test_options_point_xtest_at_the_display():
    assert injector_options("auto", ":3") == {"xtest": {"display": ":3"}}
    assert injector_options("xtest", ":3") == {"display": ":3"}
    assert injector_options("uinput", ":3") == {} == injector_options("auto", None)
    with pytest.raises(InputError, match="unknown input injector"):
        HostInput("none")
