"""SDL's own virtual game controller, for tests of anything that reads controllers."""

from __future__ import annotations

import ctypes

import sdl2


def attach_virtual_pad(name: bytes = b"rootstream virtual pad") -> int:
    """A game controller with 6 axes and 15 buttons; returns its device index."""
    desc = sdl2.SDL_VirtualJoystickDesc()
    desc.version = sdl2.SDL_VIRTUAL_JOYSTICK_DESC_VERSION
    desc.type = sdl2.SDL_JOYSTICK_TYPE_GAMECONTROLLER
    desc.naxes, desc.nbuttons, desc.name = 6, 15, name
    device_index = sdl2.SDL_JoystickAttachVirtualEx(ctypes.byref(desc))
    assert device_index >= 0, sdl2.SDL_GetError()
    return device_index
