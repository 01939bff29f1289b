"""The SDL scancode -> evdev key table, checked against pysdl2 and the kernel's header."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sdl2

from rootstream.input.keymap import (
    ALIASES,
    EVDEV_KEYS,
    MOUSE_BUTTON_TO_EVDEV,
    SCANCODE_TO_EVDEV,
    TABLE,
    scancode_to_evdev,
)
from rootstream.protocol.input import is_key_code, is_mouse_button_code

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
