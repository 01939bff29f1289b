"""The client's side of control between viewers (rootstream/client/handoff.py): what it
sends for each state, what its input sends, and the overlay's line.  The datagrams it
sends are decoded with the wire codec, so nothing it produces could be refused."""

from rootstream.client.handoff import GIVE_BACK_TRIES, RESEND_NS, ClientControl
from rootstream.input.client_service import ClientInput, OverlayFigures
from rootstream.protocol import Capability, Config, PacketType, decode_control
from rootstream.protocol.handoff import (
    ControlAction,
    ControlAnswer,
    ControlRequest,
    ControlState,
    RequestOutcome,
    StateFlag,
)
from rootstream.protocol.input import KeyEvent
from rootstream.session import SessionInfo


class Wire:
    def __init__(self):
        self.sent = []

    def __call__(self, ptype, payload):
        self.sent.append((ptype, bytes(payload)))

    def control(self):
        got = [decode_control(p) for t, p in self.sent if t == PacketType.CONTROL]
        self.sent = [(t, p) for t, p in self.sent if t != PacketType.CONTROL]
        return got

    def inputs(self):
        return [p for t, p in self.sent if t == PacketType.INPUT]


def started(*, ask=False, host_caps=Capability.INPUT | Capability.HANDOFF):
    log = []
    client_input = ClientInput(log=log.append)
    control = ClientControl(client_input, ask=ask, log=log.append)
    wire = Wire()
    info = SessionInfo(("127.0.0.1", 1), 7, "rig", Config(capabilities=host_caps))
    client_input.session_started(info, wire)
    control.session_started(info, wire)
    return control, client_input, wire, log


def state(change, **fields):
    base = dict(you=2, holder=1, watching=1, flags=StateFlag.MAY_ASK, holder_name="den")
    return ControlState(change, **{**base, **fields})


def test_an_older_host_without_hand_off_leaves_this_client_in_control():
    control, client_input, wire, log = started(host_caps=Capability.INPUT)
    assert client_input.in_control
    client_input._send_events([KeyEvent(30, True)])
    assert len(wire.inputs()) == 1
    control.ask()
    assert wire.control() == [] and "nothing to ask" in log[-1]


def test_a_watcher_sends_no_input_and_the_holder_does():
    control, client_input, wire, log = started()
    assert not client_input.in_control  # until the host's state says so
    control.on_control(state(1))
    client_input._send_events([KeyEvent(30, True)])
    assert wire.inputs() == [] and client_input.counters["not_in_control"] == 1
    assert "control: den; 1 watching (Ctrl+Alt+Shift+C asks for control)" in log[-1]
    control.on_control(state(2, holder=2, holder_name="tv"))
    client_input._send_events([KeyEvent(30, True)])
    assert len(wire.inputs()) == 1
    assert control.overlay_lines() == ["control: you; 1 watching"]


def test_connect_control_asks_once_the_first_state_comes_and_resends_until_answered():
    control, _, wire, _ = started(ask=True)
    control.on_control(state(1))
    assert wire.control() == [ControlRequest(ControlAction.ASK)]
    control.tick(0)
    assert wire.control() == []  # not before RESEND_NS
    control._next_resend_ns = 0
    control.tick(RESEND_NS)
    assert wire.control() == [ControlRequest(ControlAction.ASK)]
    # A repeat of the state it asked at is no answer; a newer one is.
    control.on_control(state(1))
    control.on_control(state(2, outcome=RequestOutcome.WAITING))
    control._next_resend_ns = 0
    control.tick(2 * RESEND_NS)
    assert wire.control() == []


def test_stale_states_are_ignored():
    control, client_input, _, _ = started()
    control.on_control(state(5, holder=2))
    control.on_control(state(4, holder=1))
    assert control.state.change == 5 and client_input.in_control
    control.on_control(state(0, holder=1))  # 0 after 0xFFFFFFFF would be newer; 0 after 5 is not
    assert control.state.change == 5


def test_the_holder_sees_a_request_and_answers_it_by_the_askers_number():
    control, _, wire, log = started()
    control.on_control(state(1, holder=2, holder_name="den", pending=3, pending_name="tv"))
    assert "tv asks for control" in log[-1]
    assert control.overlay_lines() == [
        "control: you; 1 watching",
        "tv asks for control: Ctrl+Alt+Shift+A gives it, +D keeps it"]
    control.hotkey("accept")
    control.hotkey("deny")
    assert wire.control() == [ControlAnswer(3, 1), ControlAnswer(3, 0)]


def test_the_holder_gives_control_back_with_its_hotkey_until_the_state_says_so():
    control, client_input, wire, log = started()
    control.hotkey("give back")  # no state yet: nothing held, nothing sent
    assert wire.control() == [] and "nothing to give back" in log[-1]
    control.on_control(state(1, holder=2))
    assert "Ctrl+Alt+Shift+G gives it back" in log[-1]
    control.hotkey("give back")
    assert wire.control() == [ControlRequest(ControlAction.GIVE_BACK)]
    control._next_resend_ns = 0
    control.tick(RESEND_NS)  # no newer state yet: the request may have been lost
    assert wire.control() == [ControlRequest(ControlAction.GIVE_BACK)]
    control.on_control(state(2, holder=1))
    assert not client_input.in_control
    control._next_resend_ns = 0
    control.tick(2 * RESEND_NS)
    assert wire.control() == []


def test_a_give_back_the_host_ignores_is_not_sent_forever():
    control, _, wire, _ = started()
    control.on_control(state(1, holder=2))
    control.give_back()
    for step in range(1, 20):
        control._next_resend_ns = 0
        control.tick(step * RESEND_NS)
    assert len(wire.control()) == GIVE_BACK_TRIES


def test_a_guest_who_may_not_ask_is_told_so_without_asking():
    control, _, wire, log = started()
    control.on_control(state(1, flags=StateFlag.GUEST))
    control.hotkey("ask")
    assert wire.control() == [] and "guests watch only" in log[-1]
    control.hotkey("accept")
    assert wire.control() == [] and "no request" in log[-1]


def test_outcomes_are_said():
    control, _, _, log = started()
    control.on_control(state(1))
    control.ask()
    control.on_control(state(2, outcome=RequestOutcome.LOCKED))
    assert "locked" in log[-1]


def test_the_overlay_shows_the_control_line():
    lines = OverlayFigures().lines({"control": ["control: den; 3 watching"]}, 1)
    assert lines[-1] == "control: den; 3 watching"
