"""The uinput injector up to python-uinput's Device boundary; real devices need /dev/uinput.

The capability lists and (event, value) writes are checked against the
kernel's own numbers (<linux/input-event-codes.h>, and python-uinput's copy
of them).  DeviceLog stands where uinput.Device would write to the kernel:
it is given exactly the arguments Device would get and records the writes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import uinput

from rootstream.errors import InputError
from rootstream.input import open_injector
from rootstream.input.inject_uinput import (
    XBOX360_ID,
    UinputInjector,
    gamepad_capabilities,
    gamepad_events,
    keyboard_capabilities,
    mouse_capabilities,
    pointer_capabilities,
)
from rootstream.input.keymap import EVDEV_KEYS
from rootstream.protocol.input import (
    BTN_LEFT,
    GAMEPAD_BUTTON_BIT,
    AbsoluteMotion,
    ButtonEvent,
    GamepadAdded,
    GamepadRemoved,
    GamepadState,
    KeyEvent,
    RelativeMotion,
    WheelEvent,
)

HEADER = Path("/usr/include/linux/input-event-codes.h")


def kernel_codes() -> dict[str, int]:
    if not HEADER.exists():
        pytest.skip("linux-libc-dev headers not installed")
    codes: dict[str, int] = {}
    for name, value in re.findall(r"#define\s+(\w+)\s+(\w+)", HEADER.read_text()):
        codes[name] = int(value, 0) if value[0].isdigit() else codes.get(value, -1)
    return codes


class DeviceLog:
    """Takes uinput.Device's arguments; records syn-separated writes."""

    def __init__(self, events, name, fd, **ids):
        os.close(fd)  # the real Device would own it; here it only proves the open worked
        self.capabilities, self.name, self.ids = list(events), name, ids
        self.pending: list = []
        self.frames: list[list] = []
        self.destroyed = False

    def emit(self, event, value, syn=True):
        assert not syn
        self.pending.append((event, value))

    def syn(self):
        self.frames.append(self.pending)
        self.pending = []

    def destroy(self):
        self.destroyed = True


@pytest.fixture
def injector(tmp_path):
    fake_node = tmp_path / "uinput"
    fake_node.write_bytes(b"")
    created: list[DeviceLog] = []

    def factory(*args, **kwargs):
        created.append(DeviceLog(*args, **kwargs))
        return created[-1]

    inj = UinputInjector(device_path=str(fake_node), device_factory=factory)
    inj.created = created
    yield inj
    inj.close()


def test_capabilities_use_the_kernel_numbers():
    codes = kernel_codes()
    assert keyboard_capabilities() == [(codes["EV_KEY"], code) for code in EVDEV_KEYS]
    mouse = mouse_capabilities()
    for name in ("REL_X", "REL_Y", "REL_WHEEL", "REL_HWHEEL", "REL_WHEEL_HI_RES",
                 "REL_HWHEEL_HI_RES"):
        assert (codes["EV_REL"], codes[name]) in mouse
    for name in ("BTN_LEFT", "BTN_RIGHT", "BTN_MIDDLE", "BTN_SIDE", "BTN_EXTRA"):
        assert (codes["EV_KEY"], codes[name]) in mouse
    assert pointer_capabilities(1920, 1080)[:2] == [
        (codes["EV_ABS"], codes["ABS_X"], 0, 1919, 0, 0),
        (codes["EV_ABS"], codes["ABS_Y"], 0, 1079, 0, 0)]
    pad = {cap[:2]: cap[2:] for cap in gamepad_capabilities()}
    for name in ("BTN_SOUTH", "BTN_EAST", "BTN_NORTH", "BTN_WEST", "BTN_TL", "BTN_TR",
                 "BTN_SELECT", "BTN_START", "BTN_MODE", "BTN_THUMBL", "BTN_THUMBR"):
        assert pad[(codes["EV_KEY"], codes[name])] == ()
    for name in ("ABS_X", "ABS_Y", "ABS_RX", "ABS_RY"):
        assert pad[(codes["EV_ABS"], codes[name])] == (-32768, 32767, 16, 128)
    for name in ("ABS_Z", "ABS_RZ"):
        assert pad[(codes["EV_ABS"], codes[name])] == (0, 32767, 0, 0)
    assert pad[(codes["EV_ABS"], codes["ABS_HAT0X"])] == (-1, 1, 0, 0)


def test_gamepad_events_write_only_what_changed():
    bit = GAMEPAD_BUTTON_BIT
    old = GamepadState(0)
    new = GamepadState(0, buttons=bit["a"] | bit["dpad_left"] | bit["dpad_up"], lx=-100, rt=500)
    assert gamepad_events(old, new) == [
        (uinput.BTN_A, 1), (uinput.ABS_HAT0X, -1), (uinput.ABS_HAT0Y, -1),
        (uinput.ABS_X, -100), (uinput.ABS_RZ, 500)]
    assert gamepad_events(new, new) == []
    assert gamepad_events(new, old) == [
        (uinput.BTN_A, 0), (uinput.ABS_HAT0X, 0), (uinput.ABS_HAT0Y, 0),
        (uinput.ABS_X, 0), (uinput.ABS_RZ, 0)]


def test_keyboard_and_mouse_writes(injector):
    keyboard, mouse = injector.created
    assert (keyboard.name, mouse.name) == ("rootstream keyboard", "rootstream mouse")
    injector.inject_many([KeyEvent(30, True), KeyEvent(30, False), ButtonEvent(BTN_LEFT, True),
                          RelativeMotion(5, 0), WheelEvent(60, 0), WheelEvent(60, -120)])
    assert keyboard.frames == [[((1, 30), 1), ((1, 30), 0)]]
    assert mouse.frames == [[((1, BTN_LEFT), 1), (uinput.REL_X, 5),
                             (uinput.REL_WHEEL_HI_RES, 60),
                             (uinput.REL_WHEEL_HI_RES, 60), (uinput.REL_HWHEEL_HI_RES, -120),
                             (uinput.REL_WHEEL, 1), (uinput.REL_HWHEEL, -1)]]


def test_key_outside_the_keymap_is_counted(injector):
    injector.inject(KeyEvent(0x2FF, True))
    assert injector.counters["key_unsupported"] == 1
    assert injector.created[0].frames == []


def test_absolute_pointer_is_created_for_the_stream_size(injector):
    injector.inject(AbsoluteMotion(10, 20, 1280, 720))
    injector.inject(AbsoluteMotion(11, 21, 1280, 720))
    injector.inject(AbsoluteMotion(5, 6, 1920, 1080))
    first, second = injector.created[2:]
    assert first.capabilities[:2] == pointer_capabilities(1280, 720)[:2]
    assert first.frames == [[(uinput.ABS_X, 10), (uinput.ABS_Y, 20)],
                            [(uinput.ABS_X, 11), (uinput.ABS_Y, 21)]]
    assert first.destroyed and not second.destroyed
    assert second.frames == [[(uinput.ABS_X, 5), (uinput.ABS_Y, 6)]]


def test_one_gamepad_device_per_controller(injector):
    injector.inject_many([GamepadAdded(0), GamepadState(1, buttons=GAMEPAD_BUTTON_BIT["b"])])
    pad0, pad1 = injector.created[2:]
    assert pad0.name == "rootstream gamepad 0" and pad1.ids == XBOX360_ID
    assert pad1.frames == [[(uinput.BTN_B, 1)]]
    injector.inject(GamepadRemoved(0))
    assert pad0.destroyed and not pad1.destroyed
    injector.close()
    assert pad1.frames[-1] == [(uinput.BTN_B, 0)]  # centred before it goes away
    assert all(device.destroyed for device in injector.created)


def test_missing_device_node_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="cannot open .*/missing") as info:
        open_injector("uinput", device_path=str(tmp_path / "missing"))
    assert "uinput" in info.value.hint
