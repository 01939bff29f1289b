"""The `uinput` injector: virtual input devices through /dev/uinput (python-uinput).

Devices, created as the client needs them:
- a keyboard with every key of rootstream.input.keymap;
- a relative mouse: REL_X/Y, the wheels in both classic detents (REL_WHEEL,
  REL_HWHEEL) and hi-res 1/120 units (REL_*_HI_RES), BTN_LEFT..BTN_TASK;
- an absolute pointer (ABS_X/Y over the stream size, like a QEMU tablet) for
  desktop use without pointer capture, created on the first absolute motion
  and recreated if the stream size changes;
- one gamepad per client controller, created on GamepadAdded (or on the first
  state of an unknown controller).

The gamepads present themselves as an Xbox 360 controller (USB 045e:028e) and
use the evdev codes the kernel's xpad driver uses for it (BTN_A/B/X/Y, BTN_TL/TR,
BTN_SELECT/START/MODE, BTN_THUMBL/R, d-pad on ABS_HAT0X/Y), because SDL,
Steam and Proton recognise that identity and map it with no configuration.
(evdev's BTN_X is the value named BTN_NORTH, though Xbox "X" sits west: xpad
reports it that way and games expect it, so positions follow xpad, not names.)

Everything up to python-uinput's Device boundary -- capability lists and the
(event, value) tuples emitted -- is built by plain functions below, so it is
tested without a /dev/uinput; creating real devices needs one.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import uinput

from rootstream.errors import InputError
from rootstream.input.injector import Injector, WheelDetents
from rootstream.input.keymap import EVDEV_KEYS
from rootstream.input.rumble import RumbleWatcher
from rootstream.input.uinput_ff import FfGamepad
from rootstream.protocol.input import BTN_LEFT, BTN_TASK, GAMEPAD_BUTTON_BIT, GamepadState

Event = tuple[int, int]  # python-uinput's (type, code)
Emit = tuple[Event, int]  # one (event, value) to write

_KEYBOARD_KEYS = frozenset(EVDEV_KEYS)
_MOUSE_BUTTONS = tuple(range(BTN_LEFT, BTN_TASK + 1))

XBOX360_ID = {"bustype": 0x03, "vendor": 0x045E, "product": 0x028E, "version": 0x0110}

# Gamepad button bit -> evdev event, as xpad reports an Xbox controller.
GAMEPAD_BUTTON_EVENTS: dict[int, Event] = {
    GAMEPAD_BUTTON_BIT["a"]: uinput.BTN_A,
    GAMEPAD_BUTTON_BIT["b"]: uinput.BTN_B,
    GAMEPAD_BUTTON_BIT["x"]: uinput.BTN_X,
    GAMEPAD_BUTTON_BIT["y"]: uinput.BTN_Y,
    GAMEPAD_BUTTON_BIT["back"]: uinput.BTN_SELECT,
    GAMEPAD_BUTTON_BIT["guide"]: uinput.BTN_MODE,
    GAMEPAD_BUTTON_BIT["start"]: uinput.BTN_START,
    GAMEPAD_BUTTON_BIT["leftstick"]: uinput.BTN_THUMBL,
    GAMEPAD_BUTTON_BIT["rightstick"]: uinput.BTN_THUMBR,
    GAMEPAD_BUTTON_BIT["leftshoulder"]: uinput.BTN_TL,
    GAMEPAD_BUTTON_BIT["rightshoulder"]: uinput.BTN_TR,
    GAMEPAD_BUTTON_BIT["misc1"]: uinput.KEY_RECORD,  # Series X|S "share", as xpad maps it
    GAMEPAD_BUTTON_BIT["paddle1"]: uinput.BTN_TRIGGER_HAPPY5,  # Elite paddles, as xpad
    GAMEPAD_BUTTON_BIT["paddle2"]: uinput.BTN_TRIGGER_HAPPY6,
    GAMEPAD_BUTTON_BIT["paddle3"]: uinput.BTN_TRIGGER_HAPPY7,
    GAMEPAD_BUTTON_BIT["paddle4"]: uinput.BTN_TRIGGER_HAPPY8,
}
# The touchpad click has no evdev equivalent on an Xbox pad and is not sent.

_STICK = (-32768, 32767, 16, 128)  # min, max, fuzz, flat
_TRIGGER = (0, 32767, 0, 0)
_HAT = (-1, 1, 0, 0)
_AXES = (("lx", uinput.ABS_X), ("ly", uinput.ABS_Y), ("rx", uinput.ABS_RX),
         ("ry", uinput.ABS_RY), ("lt", uinput.ABS_Z), ("rt", uinput.ABS_RZ))
_DPAD = {name: GAMEPAD_BUTTON_BIT["dpad_" + name] for name in ("up", "down", "left", "right")}


def keyboard_capabilities() -> list[Event]:
    return [(0x01, code) for code in EVDEV_KEYS]


def mouse_capabilities() -> list[Event]:
    return [uinput.REL_X, uinput.REL_Y, uinput.REL_WHEEL, uinput.REL_HWHEEL,
            uinput.REL_WHEEL_HI_RES, uinput.REL_HWHEEL_HI_RES,
            *((0x01, code) for code in _MOUSE_BUTTONS)]


def pointer_capabilities(width: int, height: int) -> list[tuple[int, ...]]:
    # The buttons make udev classify it as a mouse (ID_INPUT_MOUSE) rather
    # than a joystick; clicks are still sent on the relative mouse.
    return [uinput.ABS_X + (0, width - 1, 0, 0), uinput.ABS_Y + (0, height - 1, 0, 0),
            uinput.BTN_LEFT, uinput.BTN_RIGHT, uinput.BTN_MIDDLE]


def gamepad_capabilities() -> list[tuple[int, ...]]:
    caps: list[tuple[int, ...]] = list(GAMEPAD_BUTTON_EVENTS.values())
    for name, event in _AXES:
        caps.append(event + (_TRIGGER if name in ("lt", "rt") else _STICK))
    caps += [uinput.ABS_HAT0X + _HAT, uinput.ABS_HAT0Y + _HAT]
    return caps


def _hats(buttons: int) -> tuple[int, int]:
    x = bool(buttons & _DPAD["right"]) - bool(buttons & _DPAD["left"])
    y = bool(buttons & _DPAD["down"]) - bool(buttons & _DPAD["up"])
    return x, y


def gamepad_events(old: GamepadState, new: GamepadState) -> list[Emit]:
    """The evdev writes that take a virtual pad from ``old`` to ``new``."""
    out: list[Emit] = []
    changed = old.buttons ^ new.buttons
    for bit, event in GAMEPAD_BUTTON_EVENTS.items():
        if changed & bit:
            out.append((event, 1 if new.buttons & bit else 0))
    old_hat, new_hat = _hats(old.buttons), _hats(new.buttons)
    for event, before, after in ((uinput.ABS_HAT0X, old_hat[0], new_hat[0]),
                                 (uinput.ABS_HAT0Y, old_hat[1], new_hat[1])):
        if before != after:
            out.append((event, after))
    for name, event in _AXES:
        value = getattr(new, name)
        if getattr(old, name) != value:
            out.append((event, value))
    return out


def wheel_events(vertical: int, horizontal: int, detents: WheelDetents) -> list[Emit]:
    """Hi-res units always; the classic wheel once whole notches add up (as real mice do)."""
    out: list[Emit] = []
    notches_v, notches_h = detents.add(vertical, horizontal)
    if vertical:
        out.append((uinput.REL_WHEEL_HI_RES, vertical))
    if horizontal:
        out.append((uinput.REL_HWHEEL_HI_RES, horizontal))
    if notches_v:
        out.append((uinput.REL_WHEEL, notches_v))
    if notches_h:
        out.append((uinput.REL_HWHEEL, notches_h))
    return out


class UinputInjector(Injector):
    """Virtual devices on /dev/uinput.  ``device_factory`` is python-uinput's Device."""

    name = "uinput"

    def __init__(self, device_path: str = "/dev/uinput",
                 device_factory: Callable[..., object] = uinput.Device,
                 name_prefix: str = "rootstream",
                 pad_factory: Callable[..., object] | None = None) -> None:
        super().__init__()
        self._path = device_path
        self._factory = device_factory
        # Gamepads take force feedback, which python-uinput cannot offer
        # (rootstream.input.uinput_ff); a test's own device factory makes them all.
        self._pad_factory = pad_factory or (FfGamepad if device_factory is uinput.Device
                                            else device_factory)
        self.rumble: RumbleWatcher | None = None
        self._prefix = name_prefix
        self._dirty: dict[int, object] = {}
        self._wheel = WheelDetents()
        self._pointer = None
        self._pointer_size = (0, 0)
        self._pads: dict[int, object] = {}
        self.keyboard = self._create(keyboard_capabilities(), "keyboard")
        try:
            self.mouse = self._create(mouse_capabilities(), "mouse")
        except BaseException:
            self.keyboard.destroy()
            raise
        if self._pad_factory is FfGamepad:
            self.rumble = RumbleWatcher()

    def _create(self, capabilities, kind: str, factory=None, mode: int = os.O_WRONLY, **ids):
        try:
            fd = os.open(self._path, mode | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise InputError(
                f"cannot open {self._path}",
                hint="load the uinput module and give this user access (see udev/)",
                details=[str(exc)],
            ) from exc
        try:
            return (factory or self._factory)(capabilities, name=f"{self._prefix} {kind}",
                                              fd=fd, **ids)
        except OSError as exc:
            os.close(fd)
            raise InputError(f"cannot create the virtual {kind}", details=[str(exc)]) from exc

    def _emit(self, device, event: Event, value: int) -> None:
        try:
            device.emit(event, value, syn=False)
        except OSError as exc:
            raise InputError("writing to a uinput device failed", details=[str(exc)]) from exc
        self._dirty[id(device)] = device

    def _key(self, code: int, down: bool) -> bool:
        if code not in _KEYBOARD_KEYS:
            return False
        self._emit(self.keyboard, (0x01, code), int(down))
        return True

    def _button(self, code: int, down: bool) -> bool:
        self._emit(self.mouse, (0x01, code), int(down))
        return True

    def _scroll(self, vertical: int, horizontal: int) -> bool:
        for event, value in wheel_events(vertical, horizontal, self._wheel):
            self._emit(self.mouse, event, value)
        return True

    def _move_relative(self, dx: int, dy: int) -> bool:
        if dx:
            self._emit(self.mouse, uinput.REL_X, dx)
        if dy:
            self._emit(self.mouse, uinput.REL_Y, dy)
        return True

    def _move_absolute(self, x: int, y: int, width: int, height: int) -> bool:
        if self._pointer_size != (width, height):
            if self._pointer is not None:
                self._dirty.pop(id(self._pointer), None)
                self._pointer.destroy()
                self._pointer = None
            self._pointer = self._create(pointer_capabilities(width, height), "pointer")
            self._pointer_size = (width, height)
        self._emit(self._pointer, uinput.ABS_X, x)
        self._emit(self._pointer, uinput.ABS_Y, y)
        return True

    def _gamepad_added(self, index: int) -> bool:
        # Read-write: the kernel's force-feedback requests are read from the fd.
        self._pads[index] = pad = self._create(gamepad_capabilities(), f"gamepad {index}",
                                               self._pad_factory, os.O_RDWR, **XBOX360_ID)
        if self.rumble is not None:
            self.rumble.add(index, pad)
        return True

    def _gamepad_state(self, old: GamepadState, new: GamepadState) -> bool:
        pad = self._pads[new.index]
        for event, value in gamepad_events(old, new):
            self._emit(pad, event, value)
        return True

    def _gamepad_removed(self, index: int) -> bool:
        pad = self._pads.pop(index)
        self._dirty.pop(id(pad), None)
        if self.rumble is not None:
            self.rumble.remove(index)
        pad.destroy()
        return True

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, {}
        try:
            for device in dirty.values():
                device.syn()
        except OSError as exc:
            raise InputError("writing to a uinput device failed", details=[str(exc)]) from exc

    def _close(self) -> None:
        if self.rumble is not None:
            self.rumble.close()
        for device in (self.keyboard, self.mouse, self._pointer, *self._pads.values()):
            if device is not None:
                device.destroy()
        self._pads.clear()
        self._pointer = None
