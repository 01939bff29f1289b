"""The INPUT payload: keyboard, mouse and gamepad events, client to host.

Several events share one datagram (a click carries the pointer position with
it).  Network byte order::

    0  count  u8   1..MAX_EVENTS events follow
    then ``count`` events, each a u8 kind and a fixed body (the snapshot's
    body is a u8 count and that many u16 codes)

    kind  event           body
    0x01  KeyEvent        code u16 (evdev KEY_*), state u8 (0 up, 1 down)
    0x02  ButtonEvent     code u16 (evdev BTN_LEFT..BTN_TASK), state u8
    0x03  WheelEvent      vertical i16, horizontal i16 (1/120 detent, + is up/right)
    0x04  RelativeMotion  dx i16, dy i16
    0x05  AbsoluteMotion  x u16, y u16, width u16, height u16 (stream pixels)
    0x06  GamepadState    index u8, buttons u32, lx ly rx ry lt rt i16
    0x07  GamepadAdded    index u8
    0x08  GamepadRemoved  index u8
    0x09  HeldSnapshot    n u8, n x code u16 (strictly ascending)

Key and button events are edges, but the snapshot is state: it lists every
key and mouse button the client holds, so a host that missed a release fixes
itself when the next snapshot arrives (the client sends one every 250 ms and
right after each release).  Gamepad state is absolute for the same reason.

Every value is checked on decode *and* on encode, so a payload this module
builds always decodes to the same events and ``encode(decode(p)) == p`` for
every payload that decodes.  The count byte makes every proper prefix of a
valid payload invalid, and MAX_EVENTS bounds the work a hostile payload can
cause.  docs/INPUT.md has the byte-level spec and test vectors.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from rootstream.errors import ProtocolError

MAX_PAYLOAD = 1384
MAX_EVENTS = 64
MAX_GAMEPADS = 16
MAX_HELD = 128
WHEEL_DETENT = 120  # REL_WHEEL_HI_RES units per notch, as the kernel defines it

# evdev code ranges (linux/input-event-codes.h).  Key codes are 1..KEY_MAX
# minus the 0x100..0x15f block the kernel gives to BTN_* codes; mouse buttons
# are BTN_LEFT..BTN_TASK.
KEY_MAX = 0x2FF
_BTN_BLOCK_FIRST, _BTN_BLOCK_LAST = 0x100, 0x15F
BTN_LEFT, BTN_RIGHT, BTN_MIDDLE, BTN_SIDE, BTN_EXTRA = 0x110, 0x111, 0x112, 0x113, 0x114
BTN_TASK = 0x117

# Gamepad button bits: bit i is SDL_GameControllerButton i (SDL 2.0.14+), so
# the client copies SDL's numbering and the wire table below is the contract.
GAMEPAD_BUTTONS = (
    "a", "b", "x", "y", "back", "guide", "start", "leftstick", "rightstick",
    "leftshoulder", "rightshoulder", "dpad_up", "dpad_down", "dpad_left", "dpad_right",
    "misc1", "paddle1", "paddle2", "paddle3", "paddle4", "touchpad",
)
GAMEPAD_BUTTON_BIT = {name: 1 << i for i, name in enumerate(GAMEPAD_BUTTONS)}
_GAMEPAD_BUTTON_MASK = (1 << len(GAMEPAD_BUTTONS)) - 1


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """A keyboard key went down or up; ``code`` is an evdev KEY_* value."""

    code: int
    down: bool


@dataclass(frozen=True, slots=True)
class ButtonEvent:
    """A mouse button went down or up; ``code`` is BTN_LEFT..BTN_TASK."""

    code: int
    down: bool


@dataclass(frozen=True, slots=True)
class WheelEvent:
    """Scrolling in 1/120 detents (REL_WHEEL_HI_RES units); + is up / right."""

    vertical: int
    horizontal: int


@dataclass(frozen=True, slots=True)
class RelativeMotion:
    """Pointer motion while the client holds the pointer captured."""

    dx: int
    dy: int


@dataclass(frozen=True, slots=True)
class AbsoluteMotion:
    """Pointer position in stream pixels; the host scales width x height to its screen."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class GamepadState:
    """The whole state of one controller (absolute, so a lost update heals)."""

    index: int
    buttons: int = 0
    lx: int = 0
    ly: int = 0
    rx: int = 0
    ry: int = 0
    lt: int = 0
    rt: int = 0


@dataclass(frozen=True, slots=True)
class GamepadAdded:
    index: int


@dataclass(frozen=True, slots=True)
class GamepadRemoved:
    index: int


@dataclass(frozen=True, slots=True)
class HeldSnapshot:
    """Every key and mouse button the client holds, as ascending evdev codes."""

    codes: tuple[int, ...] = ()


InputEvent = (
    KeyEvent | ButtonEvent | WheelEvent | RelativeMotion | AbsoluteMotion
    | GamepadState | GamepadAdded | GamepadRemoved | HeldSnapshot
)

KIND_KEY = 0x01
KIND_BUTTON = 0x02
KIND_WHEEL = 0x03
KIND_RELATIVE = 0x04
KIND_ABSOLUTE = 0x05
KIND_GAMEPAD_STATE = 0x06
KIND_GAMEPAD_ADDED = 0x07
KIND_GAMEPAD_REMOVED = 0x08
KIND_SNAPSHOT = 0x09

_COUNT = struct.Struct("!B")
_KEY = struct.Struct("!BHB")
_PAIR = struct.Struct("!Bhh")
_ABSOLUTE = struct.Struct("!BHHHH")
_GAMEPAD = struct.Struct("!BBI6h")
_INDEX = struct.Struct("!BB")
_SNAPSHOT_HEAD = struct.Struct("!BB")
_CODE = struct.Struct("!H")
assert (_KEY.size, _PAIR.size, _ABSOLUTE.size, _GAMEPAD.size) == (4, 5, 9, 18)

_I16_MIN, _I16_MAX = -0x8000, 0x7FFF


_KEY_CODES = frozenset(c for c in range(1, KEY_MAX + 1)
                       if not _BTN_BLOCK_FIRST <= c <= _BTN_BLOCK_LAST)


def is_key_code(code: int) -> bool:
    return code in _KEY_CODES


def is_mouse_button_code(code: int) -> bool:
    return BTN_LEFT <= code <= BTN_TASK


def _fail(message: str) -> ProtocolError:
    return ProtocolError(message)


def _check_i16(*values: int) -> None:
    for value in values:
        if not _I16_MIN <= value <= _I16_MAX:
            raise _fail("INPUT value does not fit 16 bits")


def _check_key(code: int) -> None:
    if not is_key_code(code):
        raise _fail("INPUT key code is out of range")


def _check_button(code: int) -> None:
    if not is_mouse_button_code(code):
        raise _fail("INPUT mouse button code is out of range")


def _check_absolute(x: int, y: int, width: int, height: int) -> None:
    if not (0 < width <= 0xFFFF and 0 < height <= 0xFFFF and 0 <= x < width and 0 <= y < height):
        raise _fail("INPUT absolute motion is outside the stream")


def _check_index(index: int) -> None:
    if not 0 <= index < MAX_GAMEPADS:
        raise _fail("INPUT gamepad index is out of range")


def _check_gamepad(e: GamepadState) -> None:
    _check_index(e.index)
    if not 0 <= e.buttons <= _GAMEPAD_BUTTON_MASK:
        raise _fail("INPUT gamepad has reserved button bits set")
    _check_i16(e.lx, e.ly, e.rx, e.ry, e.lt, e.rt)
    if e.lt < 0 or e.rt < 0:
        raise _fail("INPUT gamepad trigger is negative")


def _check_snapshot(codes: tuple[int, ...]) -> None:
    if len(codes) > MAX_HELD:
        raise _fail("INPUT snapshot has too many codes")
    previous = -1
    for code in codes:
        if code <= previous:
            raise _fail("INPUT snapshot codes are not strictly ascending")
        if not (is_key_code(code) or is_mouse_button_code(code)):
            raise _fail("INPUT snapshot code is out of range")
        previous = code


def _encode_one(e: InputEvent, out: bytearray) -> None:
    cls = type(e)
    if cls is KeyEvent:
        _check_key(e.code)
        out += _KEY.pack(KIND_KEY, e.code, 1 if e.down else 0)
    elif cls is ButtonEvent:
        _check_button(e.code)
        out += _KEY.pack(KIND_BUTTON, e.code, 1 if e.down else 0)
    elif cls is RelativeMotion:
        _check_i16(e.dx, e.dy)
        out += _PAIR.pack(KIND_RELATIVE, e.dx, e.dy)
    elif cls is AbsoluteMotion:
        _check_absolute(e.x, e.y, e.width, e.height)
        out += _ABSOLUTE.pack(KIND_ABSOLUTE, e.x, e.y, e.width, e.height)
    elif cls is WheelEvent:
        _check_i16(e.vertical, e.horizontal)
        out += _PAIR.pack(KIND_WHEEL, e.vertical, e.horizontal)
    elif cls is GamepadState:
        _check_gamepad(e)
        out += _GAMEPAD.pack(KIND_GAMEPAD_STATE, e.index, e.buttons,
                             e.lx, e.ly, e.rx, e.ry, e.lt, e.rt)
    elif cls is GamepadAdded or cls is GamepadRemoved:
        _check_index(e.index)
        kind = KIND_GAMEPAD_ADDED if cls is GamepadAdded else KIND_GAMEPAD_REMOVED
        out += _INDEX.pack(kind, e.index)
    elif cls is HeldSnapshot:
        _check_snapshot(e.codes)
        out += _SNAPSHOT_HEAD.pack(KIND_SNAPSHOT, len(e.codes))
        out += struct.pack(f"!{len(e.codes)}H", *e.codes)
    else:
        raise _fail("INPUT event kind is unknown")


def encode_input(events) -> bytes:
    """Serialise 1..MAX_EVENTS events into one INPUT payload.

    Raises ProtocolError (the same fixed messages as the decoder) for an
    event that the wire cannot carry, so nothing invalid is ever sent.
    """
    events = tuple(events)
    if not events:
        raise _fail("INPUT payload has no events")
    if len(events) > MAX_EVENTS:
        raise _fail("INPUT payload has too many events")
    out = bytearray(_COUNT.pack(len(events)))
    for event in events:
        _encode_one(event, out)
    if len(out) > MAX_PAYLOAD:
        raise _fail("INPUT payload is too large")
    return bytes(out)


def decode_input(payload: bytes | bytearray | memoryview) -> list[InputEvent]:
    """Parse one INPUT payload; raises only ProtocolError, with a fixed message per cause."""
    size = len(payload)
    if size == 0:
        raise _fail("INPUT payload is truncated")
    if size > MAX_PAYLOAD:
        raise _fail("INPUT payload is too large")
    count = payload[0]
    if count == 0:
        raise _fail("INPUT payload has no events")
    if count > MAX_EVENTS:
        raise _fail("INPUT payload has too many events")
    events: list[InputEvent] = []
    append = events.append
    offset = 1
    try:
        for _ in range(count):
            kind = payload[offset]
            # The common kinds first; range checks inline (this runs per datagram).
            if kind == KIND_KEY or kind == KIND_BUTTON:
                _, code, state = _KEY.unpack_from(payload, offset)
                offset += 4
                if state > 1:
                    raise _fail("INPUT key state is not 0 or 1")
                if kind == KIND_KEY:
                    if code not in _KEY_CODES:
                        raise _fail("INPUT key code is out of range")
                    append(KeyEvent(code, state == 1))
                else:
                    if not BTN_LEFT <= code <= BTN_TASK:
                        raise _fail("INPUT mouse button code is out of range")
                    append(ButtonEvent(code, state == 1))
            elif kind == KIND_RELATIVE:
                _, dx, dy = _PAIR.unpack_from(payload, offset)
                offset += 5
                append(RelativeMotion(dx, dy))
            elif kind == KIND_ABSOLUTE:
                _, x, y, width, height = _ABSOLUTE.unpack_from(payload, offset)
                offset += 9
                if not (x < width and y < height):  # unsigned: also rules out a 0 size
                    raise _fail("INPUT absolute motion is outside the stream")
                append(AbsoluteMotion(x, y, width, height))
            elif kind == KIND_WHEEL:
                _, vertical, horizontal = _PAIR.unpack_from(payload, offset)
                offset += 5
                append(WheelEvent(vertical, horizontal))
            elif kind == KIND_GAMEPAD_STATE:
                state = GamepadState(*_GAMEPAD.unpack_from(payload, offset)[1:])
                offset += 18
                _check_gamepad(state)
                append(state)
            elif kind == KIND_GAMEPAD_ADDED or kind == KIND_GAMEPAD_REMOVED:
                _, index = _INDEX.unpack_from(payload, offset)
                offset += 2
                _check_index(index)
                append(GamepadAdded(index) if kind == KIND_GAMEPAD_ADDED else GamepadRemoved(index))
            elif kind == KIND_SNAPSHOT:
                _, n = _SNAPSHOT_HEAD.unpack_from(payload, offset)
                offset += 2
                if n > MAX_HELD:
                    raise _fail("INPUT snapshot has too many codes")
                codes = struct.unpack_from(f"!{n}H", payload, offset)
                offset += 2 * n
                _check_snapshot(codes)
                append(HeldSnapshot(codes))
            else:
                raise _fail("INPUT event kind is unknown")
    except (struct.error, IndexError):
        raise _fail("INPUT payload is truncated") from None
    if offset != size:
        raise _fail("INPUT payload has trailing bytes")
    return events
