"""The SDL scancode -> evdev key table, checked against pysdl2 and the kernel's header."""

from __future__ import annotations

import ctypes
import re
import time
from pathlib import Path

import pytest
import sdl2

from rootstream.input.inject_xtest import XTestInjector
from rootstream.input.keymap import (
    ALIASES,
    EVDEV_KEYS,
    MOUSE_BUTTON_TO_EVDEV,
    SCANCODE_TO_EVDEV,
    TABLE,
    scancode_to_evdev,
)
from rootstream.protocol.input import KeyEvent, is_key_code, is_mouse_button_code

HEADER = Path("/usr/include/linux/input-event-codes.h")


@pytest.fixture(scope="module")
def evdev_keys() -> dict[str, int]:
    if not HEADER.exists():
        pytest.skip("linux-libc-dev headers not installed")
    values: dict[str, int] = {}
    for name, value in re.findall(r"#define\s+(KEY_\w+|BTN_\w+)\s+(\w+)", HEADER.read_text()):
        values[name] = int(value, 0) if value[0].isdigit() else values[value]
    return values


@pytest.mark.parametrize("rows", [TABLE, ALIASES], ids=["table", "aliases"])
def test_every_row_names_real_sdl_and_evdev_values(rows, evdev_keys):
    for sdl_name, sdl_value, key_name, key_value in rows:
        assert getattr(sdl2, f"SDL_SCANCODE_{sdl_name}") == sdl_value, sdl_name
        assert evdev_keys[f"KEY_{key_name}"] == key_value, key_name
        assert is_key_code(key_value)


def test_table_is_one_to_one():
    scancodes = [row[1] for row in TABLE]
    keys = [row[3] for row in TABLE]
    assert len(set(scancodes)) == len(scancodes)
    assert len(set(keys)) == len(keys)
    assert EVDEV_KEYS == tuple(sorted(keys))


def test_aliases_only_add_other_names_for_keys_in_the_table():
    assert {row[1] for row in ALIASES}.isdisjoint(row[1] for row in TABLE)
    assert {row[3] for row in ALIASES} <= set(EVDEV_KEYS)
    assert len(SCANCODE_TO_EVDEV) == len(TABLE) + len(ALIASES)


def test_table_covers_the_keys_a_player_uses():
    names = {row[0] for row in TABLE}
    wanted = {chr(c) for c in range(ord("A"), ord("Z") + 1)} | {str(d) for d in range(10)}
    wanted |= {f"F{n}" for n in range(1, 25)}
    wanted |= {"LCTRL", "RCTRL", "LSHIFT", "RSHIFT", "LALT", "RALT", "LGUI", "RGUI",
               "UP", "DOWN", "LEFT", "RIGHT", "HOME", "END", "PAGEUP", "PAGEDOWN", "INSERT",
               "DELETE", "KP_ENTER", "KP_0", "KP_9", "KP_PERIOD", "NUMLOCKCLEAR",
               "MUTE", "VOLUMEUP", "AUDIOPLAY", "AUDIONEXT", "INTERNATIONAL1", "LANG1",
               "NONUSBACKSLASH", "PRINTSCREEN", "APPLICATION"}
    assert wanted <= names


def test_every_sdl_scancode_with_an_evdev_key_is_mapped():
    # The ones left out have no Linux key at all; listed so a new one is a decision.
    unmapped = {name[len("SDL_SCANCODE_"):] for name in dir(sdl2)
                if name.startswith("SDL_SCANCODE_") and name != "SDL_SCANCODE_UNKNOWN"
                and isinstance(getattr(sdl2, name), int)
                and getattr(sdl2, name) not in SCANCODE_TO_EVDEV}
    no_linux_key = {"SOFTLEFT", "SOFTRIGHT", "RETURN2", "SEPARATOR", "OUT", "OPER", "PRIOR",
                    "CLEARAGAIN", "CRSEL", "EXSEL", "KP_00", "KP_000", "THOUSANDSSEPARATOR",
                    "DECIMALSEPARATOR", "CURRENCYUNIT", "CURRENCYSUBUNIT", "KP_CLEAR",
                    "KP_CLEARENTRY", "KP_BINARY", "KP_OCTAL", "KP_DECIMAL", "KP_HEXADECIMAL"}
    no_linux_key |= {f"INTERNATIONAL{n}" for n in (7, 8, 9)} | {f"LANG{n}" for n in (6, 7, 8, 9)}
    no_linux_key |= {"KP_" + k for k in (
        "LEFTBRACE", "RIGHTBRACE", "TAB", "BACKSPACE", "A", "B", "C", "D", "E", "F", "XOR",
        "POWER", "PERCENT", "LESS", "GREATER", "AMPERSAND", "DBLAMPERSAND", "VERTICALBAR",
        "DBLVERTICALBAR", "COLON", "HASH", "SPACE", "AT", "EXCLAM", "MEMSTORE", "MEMRECALL",
        "MEMCLEAR", "MEMADD", "MEMSUBTRACT", "MEMMULTIPLY", "MEMDIVIDE")}
    assert unmapped <= no_linux_key, unmapped - no_linux_key


def test_lookup_and_mouse_buttons():
    assert scancode_to_evdev(sdl2.SDL_SCANCODE_A) == 30
    assert scancode_to_evdev(sdl2.SDL_SCANCODE_NONUSHASH) == 43  # same key as backslash
    assert scancode_to_evdev(sdl2.SDL_SCANCODE_KP_MEMSTORE) is None
    assert MOUSE_BUTTON_TO_EVDEV[sdl2.SDL_BUTTON_RIGHT] == 0x111
    assert all(is_mouse_button_code(code) for code in MOUSE_BUTTON_TO_EVDEV.values())


# X11 clients: SDL's x11 driver names a few keys by their keysym rather than
# their keycode, so on Xvfb's evdev keymap these arrive as another scancode.
_X11_KEYSYM_NAMED = {128: sdl2.SDL_SCANCODE_CANCEL,  # KEY_STOP carries the keysym Cancel
                     121: sdl2.SDL_SCANCODE_KP_PERIOD}  # KEY_KPCOMMA carries KP_Decimal


def test_every_key_typed_on_x_comes_back_to_its_evdev_code_through_sdl(xvfb, monkeypatch):
    """evdev code -> XTEST -> Xvfb -> SDL scancode -> this table -> the same evdev code."""
    monkeypatch.setenv("DISPLAY", xvfb.display)
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    assert sdl2.SDL_InitSubSystem(sdl2.SDL_INIT_VIDEO) == 0
    window = sdl2.SDL_CreateWindow(b"keymap", 0, 0, 320, 200, sdl2.SDL_WINDOW_SHOWN)
    event = sdl2.SDL_Event()

    def scancodes_until(sentinel: int, timeout: float = 3.0) -> list[int]:
        got: list[int] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while sdl2.SDL_PollEvent(ctypes.byref(event)):
                if event.type == sdl2.SDL_KEYDOWN:
                    if event.key.keysym.scancode == sentinel:
                        return got
                    got.append(event.key.keysym.scancode)
            time.sleep(0.001)
        raise AssertionError("sentinel key never arrived")

    try:
        with XTestInjector(display=xvfb.display) as injector:
            while not sdl2.SDL_GetWindowFlags(window) & sdl2.SDL_WINDOW_SHOWN:
                sdl2.SDL_PollEvent(ctypes.byref(event))
            sdl2.SDL_SetWindowInputFocus(window)
            checked = 0
            for _, _, key_name, code in TABLE:
                if injector.keycode_for(code) is None:
                    continue  # above X's 8-bit keycodes
                sentinel_code, sentinel = (
                    (97, sdl2.SDL_SCANCODE_RCTRL) if code != 97 else (29, sdl2.SDL_SCANCODE_LCTRL))
                injector.inject_many([KeyEvent(code, True), KeyEvent(code, False),
                                      KeyEvent(sentinel_code, True),
                                      KeyEvent(sentinel_code, False)])
                arrived = scancodes_until(sentinel)
                if not arrived:
                    continue  # no keysym on Xvfb and not in SDL's table: nothing to compare
                assert len(arrived) == 1, key_name
                if code in _X11_KEYSYM_NAMED:
                    assert arrived[0] == _X11_KEYSYM_NAMED[code], key_name
                else:  # the scancode SDL chose, or an alias of it, leads back to the key
                    assert SCANCODE_TO_EVDEV.get(arrived[0]) == code, key_name
                checked += 1
            assert checked >= 150
    finally:
        sdl2.SDL_DestroyWindow(window)
        sdl2.SDL_QuitSubSystem(sdl2.SDL_INIT_VIDEO)
