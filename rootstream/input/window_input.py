"""What the X11 input reader saw -> the InputEvents the host gets, sharing the capture's held keys.

The reader (rootstream.input.x11_reader) takes over keys, absolute pointer
motion, clicks and the wheel from the SDL capture (and, for the x11
presenter, a captured pointer's relative motion); the capture keeps what
only SDL can read (everything while the pointer is captured: SDL grabs
keyboard and pointer then; game controllers) and the hotkeys' actions, which
must run on the window's thread.  Both feed one set of held keys and
buttons, so the periodic snapshot the capture sends always includes what
was pressed here (the host would release it otherwise).

Callers hold the input service's lock around ``translate`` and the send, the
same lock the capture's snapshot is built under.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rootstream.input.x11_reader import WindowInput
from rootstream.protocol.input import (
    WHEEL_DETENT,
    AbsoluteMotion,
    ButtonEvent,
    InputEvent,
    KeyEvent,
    RelativeMotion,
    WheelEvent,
)

# X modifier state bits: Shift, Control, Mod1 (Alt on every common keymap).
_HOTKEY_STATE = (1 << 0) | (1 << 2) | (1 << 3)
# evdev codes of the hotkeys' letters: Z (pointer capture), F (fullscreen), S (stats),
# C (ask for control), A and D (give it to the asker, keep it), G (give control back).
HOTKEY_CODES = frozenset({44, 33, 31, 46, 30, 32, 34})

# X button numbers -> evdev BTN_* (left, middle, right, side, extra); 4-7 are the wheel.
X_BUTTON_TO_EVDEV = {1: 0x110, 2: 0x112, 3: 0x111, 8: 0x113, 9: 0x114}
X_WHEEL = {4: (WHEEL_DETENT, 0), 5: (-WHEEL_DETENT, 0), 6: (0, -WHEEL_DETENT),
           7: (0, WHEEL_DETENT)}

ToStream = Callable[[int, int], "tuple[int, int] | None"]
_I16_MIN, _I16_MAX = -0x8000, 0x7FFF


def relative_steps(dx: int, dy: int) -> list[RelativeMotion]:
    """A delta as RelativeMotion events: a huge jump is cut into 16-bit steps."""
    steps = []
    while dx or dy:
        step_x, step_y = max(_I16_MIN, min(_I16_MAX, dx)), max(_I16_MIN, min(_I16_MAX, dy))
        steps.append(RelativeMotion(step_x, step_y))
        dx, dy = dx - step_x, dy - step_y
    return steps



class WindowInputTranslator:
    """Keys and motion from the reader -> InputEvents; see the module docstring."""

    def __init__(self) -> None:
        self._consumed: set[int] = set()  # hotkey presses whose release is not sent either

    def translate(self, batch: Iterable[WindowInput], held_keys: set[int], *,
                  pointer_captured: bool, to_stream: ToStream,
                  stream_size: tuple[int, int],
                  held_buttons: set[int] | None = None) -> tuple[list[InputEvent], bool]:
        """Returns (events to send, whether a key or button was released: a snapshot
        must follow).  Buttons come only from a reader started with ``buttons=True``."""
        held_buttons = set() if held_buttons is None else held_buttons
        events: list[InputEvent] = []
        released = False
        for item in batch:
            if item.kind == "key":
                released |= self._key(item, held_keys, events)
            elif item.kind == "motion" and not pointer_captured:
                # Captured, the pointer moves relative (SDL reads that); the
                # absolute position is SDL's own warping then.
                where = to_stream(item.x, item.y)
                if where is not None:
                    events.append(AbsoluteMotion(where[0], where[1], *stream_size))
            elif item.kind == "relative" and pointer_captured:
                events += relative_steps(item.x, item.y)
            elif item.kind == "button":
                released |= self._button(item, held_buttons, events, pointer_captured,
                                         to_stream, stream_size)
            elif item.kind == "focus" and not item.pressed:
                # Releases that happen while another window has focus never reach us.
                events += [KeyEvent(code, False) for code in sorted(held_keys)]
                events += [ButtonEvent(code, False) for code in sorted(held_buttons)]
                released |= bool(held_keys or held_buttons)
                held_keys.clear()
                held_buttons.clear()
                self._consumed.clear()
        return events, released

    @staticmethod
    def _button(item: WindowInput, held_buttons: set[int], events: list[InputEvent],
                pointer_captured: bool, to_stream: ToStream,
                stream_size: tuple[int, int]) -> bool:
        if item.code in X_WHEEL:
            if item.pressed:  # X sends each notch as a press and a release
                events.append(WheelEvent(*X_WHEEL[item.code]))
            return False
        code = X_BUTTON_TO_EVDEV.get(item.code)
        if code is None:
            return False
        if not item.pressed:
            if code not in held_buttons:
                return False
            held_buttons.discard(code)
            events.append(ButtonEvent(code, False))
            return True
        if code in held_buttons:
            return False
        if not pointer_captured:
            # The click carries its own position: the motion before it may be lost.
            where = to_stream(item.x, item.y)
            if where is None:
                return False  # a click on a letterbox bar
            events.append(AbsoluteMotion(where[0], where[1], *stream_size))
        held_buttons.add(code)
        events.append(ButtonEvent(code, True))
        return False

    def _key(self, item: WindowInput, held_keys: set[int], events: list[InputEvent]) -> bool:
        code = item.code
        if item.pressed:
            if code in HOTKEY_CODES and item.state & _HOTKEY_STATE == _HOTKEY_STATE:
                self._consumed.add(code)  # the capture acts on it, on the window's thread
            elif code not in held_keys:  # a repeat press of a held key is dropped
                held_keys.add(code)
                events.append(KeyEvent(code, True))
            return False
        if code in self._consumed:
            self._consumed.discard(code)
            return False
        if code in held_keys:
            held_keys.discard(code)
            events.append(KeyEvent(code, False))
            return True
        return False


__all__ = ["HOTKEY_CODES", "X_BUTTON_TO_EVDEV", "WindowInputTranslator", "relative_steps"]
