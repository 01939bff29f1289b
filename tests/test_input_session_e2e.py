"""Input through the real session loops: the client's window drives the host's desktop.

Processes: ``rootstream host --source x11 --input xtest`` on Xvfb A and
``rootstream connect --present sdl`` on Xvfb B, encrypted as by default,
with a LossyRelay between them whose host-bound direction can be told to
drop INPUT datagrams (the ROOT header travels in clear, so the relay sees
the type).  xdotool plays the user on B; XRecorder, an X client on A,
records what the host's desktop receives.

In-process: a virtual SDL game controller on the client reaches the uinput
injector's event building on the host (this machine has no /dev/uinput, so
DeviceLog stands at python-uinput's Device boundary, as in
test_inject_uinput.py).
"""

from __future__ import annotations

import ctypes
import shutil
import signal
import subprocess
import threading
import time

import pytest
import uinput
from session_helpers import HostProcess, rootstream_command
from test_inject_uinput import DeviceLog
from test_inject_xtest import XRecorder

from rootstream.protocol import PacketType
from rootstream.testing.impair import ImpairmentModel, LossyRelay

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("xdotool") is None, reason="apt install xdotool"),
    pytest.mark.skipif(shutil.which("xset") is None, reason="apt install x11-xserver-utils"),
]

KEYCODE_X, KEYCODE_Y = 53, 29  # X keycodes (evdev + 8) of the US x and y keys
SIZE = (640, 480)


class InputSwitch(ImpairmentModel):
    """Forwards everything, except INPUT datagrams while ``dropping`` is set."""

    dropping = False
    dropped_input = 0

    def process(self, datagram: bytes, now: int):
        if self.dropping and len(datagram) > 5 and datagram[5] == PacketType.INPUT:
            self.counters.received += 1
            self.counters.lost += 1
            self.dropped_input += 1
            return []
        return super().process(datagram, now)


class Player:
    """xdotool on the client's display, aimed at the client's window."""

    def __init__(self, xvfb):
        self.env = xvfb.env()
        deadline = time.monotonic() + 20
        found = ""
        while not found and time.monotonic() < deadline:
            # The client is the only X client on its display: any mapped window
            # with a class is its window (xdotool does not read SDL's UTF-8
            # title).  Only mapped ones: SDL makes and destroys a hidden helper
            # window while it starts, and aiming at that one fails with BadWindow.
            found = subprocess.run(["xdotool", "search", "--onlyvisible", "--class", "."],
                                   env=self.env, capture_output=True, text=True,
                                   timeout=10).stdout.split()
            found = found[0] if found else ""
            time.sleep(0.1)
        assert found, "the client's window never appeared"
        self.window = found

    def __call__(self, *args: str) -> None:
        subprocess.run(["xdotool", *args], env=self.env, check=True, timeout=10)


def _settle(recorder: XRecorder, seconds: float = 0.3) -> list[tuple]:
    time.sleep(seconds)
    return recorder.collect(0, timeout=0.1)


def _until(recorder: XRecorder, predicate, timeout: float = 5.0) -> list[tuple]:
    """Collect until ``predicate(events so far)`` holds; return everything collected."""
    seen: list[tuple] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen += recorder.collect(0, timeout=0.05)
        if predicate(seen):
            return seen
    return seen


def keys(events):
    return [(down, code, text) for kind, down, code, text in
            (e for e in events if e[0] == "key")]


def buttons(events):
    return [e[1:] for e in events if e[0] == "button"]


@pytest.fixture
def stage(xvfb_factory, tmp_path, udp_port):
    host_x, client_x = xvfb_factory(*SIZE), xvfb_factory(*SIZE)
    # X's core auto-repeat turns a held key into release/press pairs; off, a
    # release the recorder sees is a real one.
    subprocess.run(["xset", "-display", host_x.display, "r", "off"], check=True, timeout=10)
    recorder = XRecorder(host_x.display, *SIZE)
    host = HostProcess(udp_port, "--source", "x11", "--input", "xtest", "--fps", "30",
                       "--bitrate", "2", env=host_x.env(), log_dir=tmp_path)
    relay = LossyRelay(upstream=("127.0.0.1", udp_port))
    relay.to_host = switch = InputSwitch()
    relay.start()
    client = None
    client_log = open(tmp_path / "client.log", "w")  # noqa: SIM115 - closed below
    try:
        host.wait_for("listening on")
        client = subprocess.Popen(
            rootstream_command("connect", f"{relay.address[0]}:{relay.address[1]}",
                               "--present", "sdl", "--seconds", "60", "--stats-interval", "1"),
            env=client_x.env(SDL_VIDEODRIVER="x11"), stdout=client_log,
            stderr=subprocess.STDOUT)
        host.wait_for("input injected with xtest")
        player = Player(client_x)
        time.sleep(0.3)  # mapped before it is focused (a BadMatch otherwise)
        player("windowfocus", "--sync", player.window)
        yield player, recorder, switch, client, host
    finally:
        if client is not None and client.poll() is None:
            client.kill()
            client.wait()
        relay.stop()
        host.stop()
        recorder.close()
        client_log.close()
        assert "Traceback" not in (tmp_path / "client.log").read_text()


def test_typing_clicking_scrolling_and_moving_in_the_client_reach_the_host(stage):
    player, recorder, switch, client, host = stage
    w = player.window
    # The window shows the 640x480 stream 1:1 and the host's screen is 640x480.
    player("mousemove", "--window", w, "100", "50")
    moved = _until(recorder, lambda seen: ("motion", 100, 50) in seen)
    assert ("motion", 100, 50) in moved
    recorder.collect(0, timeout=0.1)

    player("click", "1")
    player("click", "3")
    player("click", "4")  # wheel up: one detent
    player("click", "7")  # wheel right
    clicked = _until(recorder, lambda seen: len(buttons(seen)) >= 8)
    assert buttons(clicked) == [(True, 1), (False, 1), (True, 3), (False, 3),
                                (True, 4), (False, 4), (True, 7), (False, 7)]

    player("key", "a")
    player("keydown", "shift")
    player("key", "b")
    player("keyup", "shift")
    player("keydown", "ctrl")
    player("key", "c")
    player("keyup", "ctrl")
    typed = _until(recorder, lambda seen: len(keys(seen)) >= 10)
    # Modifiers travel as keys of their own: the host's X server applies them.
    assert [(down, text) for down, _, text in keys(typed)] == [
        (True, "a"), (False, "a"),
        (True, ""), (True, "B"), (False, "B"), (False, ""),
        (True, ""), (True, "\x03"), (False, "\x03"), (False, "")]
    host.wait_for("input_events=")  # the host's stats line counts them
    assert "inject " in host.log()


def test_a_key_released_during_a_loss_is_released_on_the_host(stage):
    player, recorder, switch, client, host = stage
    player("keydown", "x")
    pressed = _until(recorder, lambda seen: (True, KEYCODE_X, "x") in keys(seen))
    assert keys(pressed)[0] == (True, KEYCODE_X, "x")

    switch.dropping = True  # the release, its snapshot and the next ones are lost
    player("keyup", "x")
    during = _settle(recorder, 0.6)
    assert switch.dropped_input >= 2
    # Held across the loss: nothing releases it.
    assert all(down for down, code, _ in keys(during) if code == KEYCODE_X)

    switch.dropping = False  # the next periodic snapshot (<= 250 ms) heals
    healed = _until(recorder, lambda seen: (False, KEYCODE_X, "x") in keys(seen))
    assert keys(healed)[-1] == (False, KEYCODE_X, "x")
    assert _settle(recorder, 0.3) == []


def test_a_killed_client_leaves_no_key_held_on_the_host(stage):
    player, recorder, switch, client, host = stage
    player("keydown", "y")
    pressed = _until(recorder, lambda seen: (True, KEYCODE_Y, "y") in keys(seen))
    assert (True, KEYCODE_Y, "y") in keys(pressed)
    killed = time.monotonic()
    client.send_signal(signal.SIGKILL)
    client.wait()
    released = _until(recorder, lambda seen: (False, KEYCODE_Y, "y") in keys(seen),
                      timeout=6)
    assert keys(released)[-1] == (False, KEYCODE_Y, "y")
    # Released by the host's 2 s silence timeout, not by anything the client sent.
    assert time.monotonic() - killed >= 1.5
    host.wait_for("went silent")
    player("keyup", "y")


# -- gamepad: a virtual SDL controller to the uinput injector's device writes ------------------


def test_a_virtual_controller_drives_a_host_gamepad_and_is_centred_at_the_end(
        tmp_path, udp_port, monkeypatch):
    import sdl2

    from rootstream.client import Client, ClientOptions
    from rootstream.host import Host, HostOptions
    from rootstream.input.host_service import HostInput
    from rootstream.input.inject_uinput import UinputInjector
    from rootstream.session import ClientService

    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS", "1")
    node = tmp_path / "uinput"
    node.write_bytes(b"")
    devices: list[DeviceLog] = []

    def device_factory(*args, **kwargs):
        devices.append(DeviceLog(*args, **kwargs))
        return devices[-1]

    def opener(name, **options):
        assert name == "uinput"
        return UinputInjector(device_path=str(node), device_factory=device_factory)

    def gamepads():
        return [d for d in devices if d.ids.get("product") == 0x028E]

    def gamepad_frames():
        return [frame for pad in gamepads() for frame in pad.frames]

    class VirtualPad(ClientService):
        """Plugs a virtual controller in once the window (and SDL) is up."""

        joystick = None

        def attach_presenter(self, presenter):
            desc = sdl2.SDL_VirtualJoystickDesc()
            desc.version = sdl2.SDL_VIRTUAL_JOYSTICK_DESC_VERSION
            desc.type = sdl2.SDL_JOYSTICK_TYPE_GAMECONTROLLER
            desc.naxes, desc.nbuttons, desc.name = 6, 15, b"rootstream virtual pad"
            self.index = sdl2.SDL_JoystickAttachVirtualEx(ctypes.byref(desc))
            assert self.index >= 0, sdl2.SDL_GetError()
            self.joystick = sdl2.SDL_JoystickOpen(self.index)

        def close(self):
            if self.joystick is not None:
                sdl2.SDL_JoystickClose(self.joystick)
                sdl2.SDL_JoystickDetachVirtual(self.index)

    host_input = HostInput("uinput", opener=opener, log=lambda line: None)
    host = Host(HostOptions(source="test", size=(640, 360), fps=30, bind="127.0.0.1",
                            port=udp_port, max_sessions=1, stats_interval=60),
                log=lambda line: None, services=[host_input])
    serving = threading.Thread(target=host.serve)
    serving.start()
    pad = VirtualPad()
    client = Client(ClientOptions(host=("127.0.0.1", udp_port), present="sdl", seconds=15,
                                  stats_interval=60), log=lambda line: None, services=[pad])
    outcome: dict = {}

    def play():
        try:
            deadline = time.monotonic() + 10
            while not gamepads() and time.monotonic() < deadline:  # plugged in on the host
                time.sleep(0.02)
            sdl2.SDL_JoystickSetVirtualButton(pad.joystick, 0, 1)  # a
            sdl2.SDL_JoystickSetVirtualAxis(pad.joystick, 0, -20000)  # left stick x
            sdl2.SDL_JoystickSetVirtualAxis(pad.joystick, 5, 32767)  # right trigger
            want = {(uinput.BTN_A, 1), (uinput.ABS_X, -20000), (uinput.ABS_RZ, 32767)}
            while time.monotonic() < deadline:
                written = {w for frame in gamepad_frames() for w in frame}
                if want <= written:
                    break
                time.sleep(0.02)
            outcome["written"] = {w for frame in gamepad_frames() for w in frame}
        finally:
            client.stop()

    player = threading.Thread(target=play)
    player.start()
    try:
        client.run()
    finally:
        player.join(15)
        serving.join(10)
        host.close()
    assert {(uinput.BTN_A, 1), (uinput.ABS_X, -20000), (uinput.ABS_RZ, 32767)} <= \
        outcome["written"]
    # The session ended (bye): the host centred the pad and let go of the button.
    last = gamepad_frames()[-1]
    assert (uinput.BTN_A, 0) in last and (uinput.ABS_X, 0) in last and (uinput.ABS_RZ, 0) in last
    assert host_input.counters["input_events"] > 0
    assert host_input.session is None  # closed with the host: the pad is unplugged
    assert [pad.destroyed for pad in gamepads()] == [True]
