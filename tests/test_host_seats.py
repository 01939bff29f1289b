"""Control wired to the host's services (rootstream/host/seats.py), with the real input
service and the `record` injector: whose input is injected, what a move releases,
which service serves whom, and who is sent which state."""

from __future__ import annotations

import threading
import time

from rootstream.client import Client, ClientOptions
from rootstream.host import Host, HostOptions
from rootstream.host.seats import Seats
from rootstream.host.viewers import Viewer
from rootstream.input.host_service import HostInput
from rootstream.protocol import Capability, Config, Header, PacketType
from rootstream.protocol.handoff import (
    ControlAction,
    ControlAnswer,
    ControlRequest,
    ControlState,
)
from rootstream.protocol.input import (
    BTN_LEFT,
    ButtonEvent,
    GamepadAdded,
    GamepadState,
    KeyEvent,
    encode_input,
)
from rootstream.session import Service, SessionInfo

KEY_X, KEY_Y = 45, 21


class Recorded(Service):
    """A service that keeps what the loop told it (named like the one it stands for)."""

    def __init__(self, name: str):
        self.name = name
        self.calls: list[tuple] = []

    def session_started(self, session, send):
        self.calls.append(("started", session.address))

    def session_ended(self, reason):
        self.calls.append(("ended", reason))

    def on_control(self, message):
        self.calls.append(("control", message))


class Room:
    def __init__(self, mode="ask", *, guests_control=False):
        self.input = HostInput("record", log=lambda line: None)
        self.clipboard, self.audio = Recorded("clipboard"), Recorded("audio")
        self.sent: list[tuple] = []
        self.log: list[str] = []
        self.seats = Seats([self.input, self.clipboard, self.audio], mode=mode,
                           guests_control=guests_control,
                           send_control=lambda message, address: self.sent.append(
                               (address, message)),
                           sender=lambda viewer, service: lambda ptype, payload: None,
                           log=self.log.append)
        self.viewers: list[Viewer] = []

    def join(self, port, *, guest=False, handoff=True, now=0.0):
        viewer = Viewer(("127.0.0.1", port), port, f"v{port}", now, now)
        self.seats.joined(viewer, guest=guest, now=now)
        caps = Capability.INPUT | (Capability.HANDOFF if handoff else 0)
        viewer.info = SessionInfo(viewer.address, port, viewer.client_name, Config(), caps)
        if not self.viewers:
            self.seats.start_stream_services(viewer)
        self.seats.started(viewer)
        self.viewers.append(viewer)
        return viewer

    def type(self, viewer, seq, *events) -> bool:
        """Offer one INPUT datagram as the host loop does; whether it was taken."""
        if not self.seats.may_control(viewer):
            return False
        payload = encode_input(events)
        header = Header(PacketType.INPUT, seq, 0, len(payload), 0)
        return self.input.handle(header, memoryview(payload))

    @property
    def injected(self):
        return self.input.session.injector.events

    def states(self):
        got = [(a, m) for a, m in self.sent if isinstance(m, ControlState)]
        self.sent.clear()
        return got


def test_only_the_holders_input_is_injected():
    room = Room()
    first, second = room.join(1), room.join(2)
    assert room.type(first, 1, KeyEvent(KEY_X, True), KeyEvent(KEY_X, False))
    assert not room.type(second, 1, KeyEvent(KEY_Y, True))
    assert room.injected == [KeyEvent(KEY_X, True), KeyEvent(KEY_X, False)]


def test_a_move_releases_what_the_previous_holder_held_and_the_typing_follows():
    room = Room("free")
    first, second = room.join(1), room.join(2)
    pad = GamepadState(0, buttons=1, lx=12000)
    room.type(first, 1, KeyEvent(KEY_X, True), ButtonEvent(BTN_LEFT, True), GamepadAdded(0),
              pad)
    held = list(room.injected)
    room.seats.on_control(second, ControlRequest(ControlAction.ASK), 1.0, first=False)
    # Keys, buttons and pads: everything the previous holder held is let go.
    assert room.injected[len(held):] == [KeyEvent(KEY_X, False), ButtonEvent(BTN_LEFT, False),
                                         GamepadState(0)]
    assert "rootstream host: control: v1 -> v2 (free)" in room.log
    assert not room.type(first, 2, KeyEvent(KEY_X, True))
    assert room.type(second, 1, KeyEvent(KEY_Y, True))  # a fresh sequence: a new holder
    assert room.injected[-1] == KeyEvent(KEY_Y, True)


def test_ask_mode_the_holders_answer_moves_it_and_a_stranger_answer_does_not():
    room = Room("ask")
    first, second, third = room.join(1), room.join(2), room.join(3)
    room.seats.on_control(second, ControlRequest(ControlAction.ASK), 1.0, first=False)
    room.seats.on_control(third, ControlAnswer(second.seat, 1), 1.1, first=False)
    assert room.seats.may_control(first)
    room.seats.on_control(first, ControlAnswer(second.seat, 1), 1.2, first=True)
    assert room.seats.may_control(second) and not room.seats.may_control(first)
    assert room.log == ["rootstream host: control: nobody -> v1 (joined)",
                        "rootstream host: control: v2 asked v1: waiting for an answer",
                        "rootstream host: control: v1 -> v2 (granted)"]


def test_the_holder_leaving_passes_control_on_and_releases():
    room = Room("locked")
    first, second = room.join(1), room.join(2)
    room.type(first, 1, KeyEvent(KEY_X, True))
    room.seats.left(first, "bye")
    assert room.injected[-1] == KeyEvent(KEY_X, False)
    assert room.seats.may_control(second)
    assert room.clipboard.calls[-1] == ("started", second.address)


def test_a_guest_holder_never_gets_the_hosts_clipboard():
    room = Room("free", guests_control=True)
    room.join(1)
    guest = room.join(2, guest=True)
    room.clipboard.calls.clear()
    room.seats.on_control(guest, ControlRequest(ControlAction.ASK), 1.0, first=False)
    assert room.seats.may_control(guest)
    assert room.clipboard.calls == [("ended", "handoff")]  # ended for v1, never started for it


def test_stream_services_follow_the_first_and_holder_services_the_holder():
    room = Room("free")
    first, second = room.join(1), room.join(2)
    room.seats.on_control(second, ControlRequest(ControlAction.ASK), 1.0, first=False)
    room.audio.calls.clear()
    room.clipboard.calls.clear()
    marker = object()
    room.seats.on_control(first, marker, 2.0, first=True)
    room.seats.on_control(second, marker, 2.0, first=False)
    assert room.audio.calls == [("control", marker)]
    assert room.clipboard.calls == [("control", marker)]


def test_states_go_to_viewers_that_announced_hand_off_each_with_its_own_number():
    room = Room()
    first = room.join(1)
    old = room.join(2, handoff=False)
    states = room.states()
    assert {address for address, _ in states} == {first.address}
    assert all(state.you == first.seat and state.you_hold for _, state in states)
    room.seats.tick(10.0)  # resent every second
    assert [a for a, _ in room.states()] == [first.address]
    room.seats.tick(10.5)
    assert room.states() == []
    assert not room.seats.may_control(old)


def test_input_a_watcher_sends_anyway_is_dropped_and_counted_on_a_real_host(udp_port):
    """Real host, two real encrypted clients on loopback.  The watcher's client is made
    to send input as an older or modified client would: the host drops and counts it."""
    host = Host(HostOptions(source="test", size=(640, 360), fps=15, bind="127.0.0.1",
                            port=udp_port, viewers=2, input="record", stats_interval=60),
                log=lambda line: None)
    serving = threading.Thread(target=host.serve)
    serving.start()
    clients = [Client(ClientOptions(host=("127.0.0.1", udp_port), present="null", seconds=6,
                                    audio=False, stats_interval=60), log=lambda line: None)
               for _ in range(2)]
    runs = []
    try:
        for client in clients:
            runs.append(threading.Thread(target=client.run))
            runs[-1].start()
            deadline = time.monotonic() + 10
            while (client.handoff.state is None and time.monotonic() < deadline):
                time.sleep(0.05)  # one at a time: the first to connect holds control
        holder, watcher = clients
        assert holder.handoff.state.you_hold and not watcher.handoff.state.you_hold
        watcher._input.set_in_control = lambda holding: None  # deaf to the host's state
        watcher._input.in_control = True
        watcher._input._send_events([KeyEvent(KEY_Y, True)])
        holder._input._send_events([KeyEvent(KEY_X, True)])
        deadline = time.monotonic() + 5
        injected = host.services[0].session.injector.events
        while KeyEvent(KEY_X, True) not in injected and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        assert KeyEvent(KEY_X, True) in injected
        assert KeyEvent(KEY_Y, True) not in injected
        assert host.stats.totals.get("dropped_not_in_control", 0) >= 1
        assert host.viewers.list()[1].counts.get("dropped_input", 0) >= 1
    finally:
        for client in clients:
            client.stop()
        for run in runs:
            run.join(10)
        host.stop()
        serving.join(10)
        host.close()
