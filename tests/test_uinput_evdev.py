"""uinput injection on a real kernel: every event read back from evdev.

Runs where /dev/uinput exists (the test VM supplies it).  Each device the
injector creates is opened on /dev/input/event* before events are sent, and
what the kernel delivers there is compared with what was injected: keyboard,
relative mouse, wheel, absolute pointer, one gamepad per client controller,
and the releases a session end must send.
"""

from __future__ import annotations

import errno
import itertools

import pytest
from evdev_reader import EV_ABS, EV_KEY, EV_REL, EvdevReader

from rootstream.input import open_injector
from rootstream.input.session import InputSession
from rootstream.protocol.input import (
    BTN_LEFT,
    BTN_RIGHT,
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

pytestmark = pytest.mark.uinput

# <linux/input-event-codes.h>
KEY_A, KEY_LEFTSHIFT = 30, 42
REL_X, REL_Y, REL_HWHEEL, REL_WHEEL, REL_WHEEL_HI_RES, REL_HWHEEL_HI_RES = 0, 1, 6, 8, 11, 12
ABS_X, ABS_Y, ABS_Z, ABS_RX, ABS_RZ, ABS_HAT0X, ABS_HAT0Y = 0, 1, 2, 3, 5, 0x10, 0x11
BTN_A, BTN_B = 0x130, 0x131

_names = itertools.count()


@pytest.fixture
def injector():
    # A fresh name per test: a device of an earlier test may still be going away.
    with open_injector("uinput", name_prefix=f"rootstream-evdev-{next(_names)}") as injector:
        yield injector


def reader(injector, kind: str) -> EvdevReader:
    return EvdevReader(f"{injector._prefix} {kind}")


def test_keyboard_keys_arrive_in_one_frame(injector):
    with reader(injector, "keyboard") as keyboard:
        injector.inject_many([KeyEvent(KEY_LEFTSHIFT, True), KeyEvent(KEY_A, True)])
        injector.inject_many([KeyEvent(KEY_A, False), KeyEvent(KEY_LEFTSHIFT, False)])
        assert keyboard.frames(2) == [
            [(EV_KEY, KEY_LEFTSHIFT, 1), (EV_KEY, KEY_A, 1)],
            [(EV_KEY, KEY_A, 0), (EV_KEY, KEY_LEFTSHIFT, 0)],
        ]


def test_relative_mouse_motion_and_buttons(injector):
    with reader(injector, "mouse") as mouse:
        injector.inject_many([RelativeMotion(5, -3), ButtonEvent(BTN_LEFT, True)])
        injector.inject_many([RelativeMotion(0, 7), ButtonEvent(BTN_LEFT, False)])
        assert mouse.frames(2) == [
            [(EV_REL, REL_X, 5), (EV_REL, REL_Y, -3), (EV_KEY, BTN_LEFT, 1)],
            [(EV_REL, REL_Y, 7), (EV_KEY, BTN_LEFT, 0)],
        ]


def test_wheel_sends_hi_res_units_and_whole_notches(injector):
    with reader(injector, "mouse") as mouse:
        injector.inject(WheelEvent(120, 0))
        injector.inject(WheelEvent(60, 0))
        injector.inject(WheelEvent(60, 0))
        injector.inject(WheelEvent(0, -120))
        assert mouse.frames(4) == [
            [(EV_REL, REL_WHEEL_HI_RES, 120), (EV_REL, REL_WHEEL, 1)],
            [(EV_REL, REL_WHEEL_HI_RES, 60)],  # half a notch: hi-res readers only
            [(EV_REL, REL_WHEEL_HI_RES, 60), (EV_REL, REL_WHEEL, 1)],
            [(EV_REL, REL_HWHEEL_HI_RES, -120), (EV_REL, REL_HWHEEL, -1)],
        ]


def test_absolute_pointer_spans_the_stream(injector):
    injector.inject(AbsoluteMotion(100, 200, 640, 480))  # creates the pointer
    with reader(injector, "pointer") as pointer:
        assert pointer.absinfo(ABS_X)[:3] == (100, 0, 639)
        assert pointer.absinfo(ABS_Y)[:3] == (200, 0, 479)
        injector.inject(AbsoluteMotion(639, 0, 640, 480))
        assert pointer.frames(1) == [[(EV_ABS, ABS_X, 639), (EV_ABS, ABS_Y, 0)]]


def test_one_gamepad_per_controller(injector):
    injector.inject_many([GamepadAdded(0), GamepadAdded(1)])
    with reader(injector, "gamepad 0") as pad0, reader(injector, "gamepad 1") as pad1:
        assert pad0.device_id() == pad1.device_id() == (0x03, 0x045E, 0x028E, 0x0110)
        assert pad0.absinfo(ABS_X)[1:3] == (-32768, 32767)
        assert pad0.absinfo(ABS_RZ)[1:3] == (0, 32767)
        up = GAMEPAD_BUTTON_BIT["dpad_up"]
        injector.inject(GamepadState(0, buttons=GAMEPAD_BUTTON_BIT["a"] | up, lx=1000,
                                     lt=20000))
        injector.inject(GamepadState(1, buttons=GAMEPAD_BUTTON_BIT["b"], rx=-32768))
        assert pad0.frames(1) == [[(EV_KEY, BTN_A, 1), (EV_ABS, ABS_HAT0Y, -1),
                                   (EV_ABS, ABS_X, 1000), (EV_ABS, ABS_Z, 20000)]]
        assert pad1.frames(1) == [[(EV_KEY, BTN_B, 1), (EV_ABS, ABS_RX, -32768)]]
        injector.inject(GamepadRemoved(0))
        # The pad is gone for its readers (evdev answers ENODEV, even for events
        # still queued), the other one stays.
        with pytest.raises(OSError) as gone:
            pad0.frames(1)
        assert gone.value.errno == errno.ENODEV
        injector.inject(GamepadState(1))
        assert pad1.frames(1) == [[(EV_KEY, BTN_B, 0), (EV_ABS, ABS_RX, 0)]]


def test_a_session_end_releases_everything_held(injector):
    session = InputSession(injector)
    session.apply([GamepadAdded(0)])
    with (reader(injector, "keyboard") as keyboard, reader(injector, "mouse") as mouse,
          reader(injector, "gamepad 0") as pad):
        held = GamepadState(0, buttons=GAMEPAD_BUTTON_BIT["b"] | GAMEPAD_BUTTON_BIT["dpad_left"],
                            lx=5000, rt=30000)
        assert session.apply([KeyEvent(KEY_LEFTSHIFT, True), KeyEvent(KEY_A, True),
                              ButtonEvent(BTN_RIGHT, True), held])
        assert keyboard.frames(1) == [[(EV_KEY, KEY_LEFTSHIFT, 1), (EV_KEY, KEY_A, 1)]]
        assert mouse.frames(1) == [[(EV_KEY, BTN_RIGHT, 1)]]
        assert sorted(pad.frames(1)[0]) == sorted([
            (EV_KEY, BTN_B, 1), (EV_ABS, ABS_HAT0X, -1), (EV_ABS, ABS_X, 5000),
            (EV_ABS, ABS_RZ, 30000)])
        session.on_client_gone()  # what the host does when a session ends, for any reason
        assert keyboard.frames(1) == [[(EV_KEY, KEY_A, 0), (EV_KEY, KEY_LEFTSHIFT, 0)]]
        assert mouse.frames(1) == [[(EV_KEY, BTN_RIGHT, 0)]]
        assert sorted(pad.frames(1)[0]) == sorted([
            (EV_KEY, BTN_B, 0), (EV_ABS, ABS_HAT0X, 0), (EV_ABS, ABS_X, 0),
            (EV_ABS, ABS_RZ, 0)])
    assert not injector.held_keys and not injector.held_buttons
