"""The `xtest` injector: the X server's XTEST extension, for hosts without /dev/uinput.

Loaded through the one Xlib binding (rootstream._native.xlib: cffi in ABI mode,
libX11.so.6 + libXtst.so.6), so nothing is compiled and a host without X
simply fails this backend's probe.

Keys: XTEST presses X keycodes.  Every X server that uses the evdev XKB
keycodes (Xorg with libinput or evdev, Xvfb, Xwayland, Xvnc) numbers keys as
evdev code + 8; that is checked at open on a handful of keys whose keysyms are
unmistakable.  On a server with another numbering the injector maps evdev code
-> keysym -> whatever keycode the server gives that keysym, for the keys in
_FALLBACK_KEYSYMS; that fallback follows the host's layout for letters (it
types the US character, not the US position), which is the best XTEST can do
without keycode numbers.  X keycodes are 8 bits, so evdev codes above 247 cannot be
typed through XTEST at all; they are counted as unsupported.

Pointer: absolute motion is scaled from stream pixels to the screen; the
wheel is buttons 4-7, one click per whole detent, with hi-res remainders
carried over; side buttons follow the evdev driver's numbering (8 and up).

Gamepads cannot be expressed through XTEST; they are counted and dropped.

Xlib's default error handler exits the process, and it is global, so rather
than replace it this module never sends a request that could fail: keycodes
are checked against the server's range, buttons against the pointer's button
count, coordinates clamped to the screen.
"""

from __future__ import annotations

import logging
import os

from rootstream._native import xlib
from rootstream._native.xlib import ffi as _ffi
from rootstream.errors import InputError, RootStreamError
from rootstream.input.injector import Injector, WheelDetents
from rootstream.protocol.input import (
    BTN_EXTRA,
    BTN_LEFT,
    BTN_MIDDLE,
    BTN_RIGHT,
    BTN_SIDE,
    GamepadState,
)


def _load():
    """(libX11, libXtst) from the one Xlib binding; InputError when either is missing."""
    try:
        libraries = xlib.load()
    except RootStreamError as exc:
        raise InputError("the X11 client libraries are missing", hint="install libx11-6",
                         details=[str(exc), *exc.details]) from exc
    if libraries.xtst is None:
        raise InputError("the X11 XTEST library is missing", hint="install libxtst6",
                         details=[m for m in libraries.missing if "Xtst" in m])
    return libraries.x11, libraries.xtst


log = logging.getLogger(__name__)

EVDEV_KEYCODE_OFFSET = 8

# Keys whose evdev+8 keycode must carry these keysyms on an evdev-numbered
# server.  Only keys every layout agrees on: letters move (AZERTY swaps A and
# Q) and a French desktop must still be recognised as evdev-numbered.
_EVDEV_FINGERPRINT = {1: "Escape", 14: "BackSpace", 15: "Tab", 28: "Return", 29: "Control_L",
                      42: "Shift_L", 57: "space", 59: "F1", 88: "F12"}

# evdev code -> keysym name, used only on servers with another keycode numbering.
_FALLBACK_KEYSYMS: dict[int, str] = {
    1: "Escape", 14: "BackSpace", 15: "Tab", 28: "Return", 57: "space",
    12: "minus", 13: "equal", 26: "bracketleft", 27: "bracketright", 43: "backslash",
    39: "semicolon", 40: "apostrophe", 41: "grave", 51: "comma", 52: "period", 53: "slash",
    58: "Caps_Lock", 69: "Num_Lock", 70: "Scroll_Lock", 99: "Print", 119: "Pause",
    110: "Insert", 111: "Delete", 102: "Home", 107: "End", 104: "Prior", 109: "Next",
    103: "Up", 108: "Down", 105: "Left", 106: "Right",
    29: "Control_L", 97: "Control_R", 42: "Shift_L", 54: "Shift_R",
    56: "Alt_L", 100: "Alt_R", 125: "Super_L", 126: "Super_R", 127: "Menu",
    96: "KP_Enter", 98: "KP_Divide", 55: "KP_Multiply", 74: "KP_Subtract", 78: "KP_Add",
    83: "KP_Delete", 82: "KP_0", 79: "KP_1", 80: "KP_2", 81: "KP_3", 75: "KP_4",
    76: "KP_5", 77: "KP_6", 71: "KP_7", 72: "KP_8", 73: "KP_9",
    113: "XF86AudioMute", 114: "XF86AudioLowerVolume", 115: "XF86AudioRaiseVolume",
    163: "XF86AudioNext", 164: "XF86AudioPlay", 165: "XF86AudioPrev", 166: "XF86AudioStop",
}
_LETTER_CODES = (30, 48, 46, 32, 18, 33, 34, 35, 23, 36, 37, 38, 50, 49, 24, 25,
                 16, 19, 31, 20, 22, 47, 17, 45, 21, 44)
_FALLBACK_KEYSYMS.update(zip(_LETTER_CODES, "abcdefghijklmnopqrstuvwxyz", strict=True))
_FALLBACK_KEYSYMS.update(zip(range(2, 12), "1234567890", strict=True))
_FALLBACK_KEYSYMS.update({59 + i: f"F{i + 1}" for i in range(10)})
_FALLBACK_KEYSYMS.update({87: "F11", 88: "F12"})

# evdev mouse buttons -> X core buttons, as xf86-input-evdev and libinput number them.
_X_BUTTONS = {BTN_LEFT: 1, BTN_MIDDLE: 2, BTN_RIGHT: 3, BTN_SIDE: 8, BTN_EXTRA: 9,
              0x115: 10, 0x116: 11, 0x117: 12}
_WHEEL_UP, _WHEEL_DOWN, _WHEEL_LEFT, _WHEEL_RIGHT = 4, 5, 6, 7


def _display_name(display: str | None) -> bytes:
    name = display or os.environ.get("DISPLAY", "")
    if not name:
        raise InputError("no X display to inject into", hint="set DISPLAY or pass display=':0'")
    return name.encode()


class XTestInjector(Injector):
    """Inject into an X display through XTEST.  ``keymap`` is "auto", "evdev" or "keysym"."""

    name = "xtest"

    def __init__(self, display: str | None = None, keymap: str = "auto") -> None:
        super().__init__()
        if keymap not in ("auto", "evdev", "keysym"):
            raise InputError(f"unknown xtest keymap {keymap!r}", hint="use auto, evdev or keysym")
        self._x11, self._xtst = _load()
        name = _display_name(display)
        self._dpy = self._x11.XOpenDisplay(name)
        if self._dpy == _ffi.NULL:
            raise InputError(f"cannot open X display {name.decode()}",
                             hint="is the X server running, and may this user connect (xhost)?")
        try:
            self._check_xtest()
            self._screen = self._x11.XDefaultScreen(self._dpy)
            self.screen_width = self._x11.XDisplayWidth(self._dpy, self._screen)
            self.screen_height = self._x11.XDisplayHeight(self._dpy, self._screen)
            lo, hi = _ffi.new("int *"), _ffi.new("int *")
            self._x11.XDisplayKeycodes(self._dpy, lo, hi)
            self._min_keycode, self._max_keycode = lo[0], hi[0]
            self.pointer_buttons = self._x11.XGetPointerMapping(self._dpy, _ffi.NULL, 0)
            if keymap == "auto":
                keymap = "evdev" if self._keycodes_are_evdev() else "keysym"
            self.keymap = keymap
            self._keycodes: dict[int, int | None] = {}
        except BaseException:
            self._x11.XCloseDisplay(self._dpy)
            raise
        self._wheel = WheelDetents()

    def _check_xtest(self) -> None:
        ints = [_ffi.new("int *") for _ in range(4)]
        if not self._xtst.XTestQueryExtension(self._dpy, *ints):
            raise InputError("the X server has no XTEST extension",
                             hint="start the X server with +extension XTEST")

    def _keysyms_of(self, keycode: int) -> list[int]:
        if not self._min_keycode <= keycode <= self._max_keycode:
            return []  # asking would be a BadValue, and Xlib's handler exits
        per = _ffi.new("int *")
        syms = self._x11.XGetKeyboardMapping(self._dpy, keycode, 1, per)
        if syms == _ffi.NULL:
            return []
        try:
            return [syms[i] for i in range(per[0])]
        finally:
            self._x11.XFree(syms)

    def _keycodes_are_evdev(self) -> bool:
        for code, keysym_name in _EVDEV_FINGERPRINT.items():
            keysym = self._x11.XStringToKeysym(keysym_name.encode())
            if keysym not in self._keysyms_of(code + EVDEV_KEYCODE_OFFSET):
                return False
        return True

    def keycode_for(self, code: int) -> int | None:
        """The X keycode that types evdev ``code`` on this server, or None."""
        if code in self._keycodes:
            return self._keycodes[code]
        keycode: int | None
        if self.keymap == "evdev":
            keycode = code + EVDEV_KEYCODE_OFFSET
        else:
            keysym_name = _FALLBACK_KEYSYMS.get(code)
            keysym = self._x11.XStringToKeysym(keysym_name.encode()) if keysym_name else 0
            keycode = self._x11.XKeysymToKeycode(self._dpy, keysym) if keysym else 0
        if not keycode or not self._min_keycode <= keycode <= self._max_keycode:
            keycode = None
        self._keycodes[code] = keycode
        return keycode

    # -- primitives --------------------------------------------------------

    def _key(self, code: int, down: bool) -> bool:
        keycode = self.keycode_for(code)
        if keycode is None:
            return False
        self._xtst.XTestFakeKeyEvent(self._dpy, keycode, down, 0)
        return True

    def _button(self, code: int, down: bool) -> bool:
        button = _X_BUTTONS.get(code)
        if button is None or button > self.pointer_buttons:
            return False
        self._xtst.XTestFakeButtonEvent(self._dpy, button, down, 0)
        return True

    def _click(self, button: int, times: int) -> None:
        for _ in range(times):
            self._xtst.XTestFakeButtonEvent(self._dpy, button, True, 0)
            self._xtst.XTestFakeButtonEvent(self._dpy, button, False, 0)

    def _scroll(self, vertical: int, horizontal: int) -> bool:
        up, right = self._wheel.add(vertical, horizontal)
        self._click(_WHEEL_UP if up > 0 else _WHEEL_DOWN, abs(up))
        self._click(_WHEEL_RIGHT if right > 0 else _WHEEL_LEFT, abs(right))
        return True

    def _move_relative(self, dx: int, dy: int) -> bool:
        self._xtst.XTestFakeRelativeMotionEvent(self._dpy, dx, dy, 0)
        return True

    def _move_absolute(self, x: int, y: int, width: int, height: int) -> bool:
        # Map the centre of stream pixel x to the screen pixel that contains it.
        sx = min((2 * x + 1) * self.screen_width // (2 * width), self.screen_width - 1)
        sy = min((2 * y + 1) * self.screen_height // (2 * height), self.screen_height - 1)
        self._xtst.XTestFakeMotionEvent(self._dpy, self._screen, max(sx, 0), max(sy, 0), 0)
        return True

    def _gamepad_added(self, index: int) -> bool:
        if not self.counters["gamepad_unsupported"]:
            log.warning("the xtest injector cannot create gamepads; the client's controller "
                        "input is dropped (use uinput on the host for gamepads)")
        return False

    def _gamepad_state(self, old: GamepadState, new: GamepadState) -> bool:
        return False

    def _gamepad_removed(self, index: int) -> bool:
        return False

    def _flush(self) -> None:
        if not self.closed:
            self._x11.XFlush(self._dpy)

    def sync(self) -> None:
        """Wait until the server has processed everything sent (tests, benchmarks)."""
        self._x11.XSync(self._dpy, False)

    def _close(self) -> None:
        self._x11.XCloseDisplay(self._dpy)
