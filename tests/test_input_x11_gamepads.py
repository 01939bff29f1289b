"""Game controllers beside the x11 presenter (``auto``'s choice without a GPU): SDL's
game-controller API on the GamepadPump thread, with no SDL window, on a real Xvfb
window and SDL's real virtual joystick."""

from __future__ import annotations

import time

import sdl2
from test_input_client_service import black_frame, session
from virtual_pad import attach_virtual_pad

from rootstream.input.client_service import ClientInput
from rootstream.present import open_presenter
from rootstream.protocol.input import (
    GAMEPAD_BUTTON_BIT,
    GamepadAdded,
    GamepadRemoved,
    GamepadState,
    HeldSnapshot,
    decode_input,
)


def _gamepad_events(sent: list[bytes]) -> list:
    return [e for p in sent for e in decode_input(p) if not isinstance(e, HeldSnapshot)]


def _wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_a_virtual_controller_reaches_the_host_beside_the_x11_presenter(xvfb_factory):
    xvfb = xvfb_factory(640, 360)
    sent: list[bytes] = []
    with open_presenter("x11", width=640, height=360, display=xvfb.display) as window:
        window.present(black_frame(640, 360))
        service = ClientInput(log=lambda line: None)
        service.session_started(session(), lambda ptype, payload: sent.append(payload))
        service.attach_presenter(window)
        assert service.gamepad_pump is not None
        device_index = attach_virtual_pad()
        joystick = sdl2.SDL_JoystickOpen(device_index)
        try:
            assert _wait_for(lambda: _gamepad_events(sent)[:2] == [GamepadAdded(0),
                                                                  GamepadState(0)])
            sdl2.SDL_JoystickSetVirtualButton(joystick, 0, 1)  # a
            sdl2.SDL_JoystickSetVirtualAxis(joystick, 0, -20000)  # left stick x
            expected = GamepadState(0, GAMEPAD_BUTTON_BIT["a"], lx=-20000)
            assert _wait_for(lambda: _gamepad_events(sent)[-1:] == [expected]), \
                _gamepad_events(sent)
            assert service.capture.controller(0) is not None  # rumble finds it
        finally:
            sdl2.SDL_JoystickClose(joystick)
            sent.clear()
            service.close()  # the pump's thread closes the controller before the capture
        sdl2.SDL_JoystickDetachVirtual(device_index)
    assert GamepadRemoved(0) in _gamepad_events(sent)
    assert decode_input(sent[-1])[-1] == HeldSnapshot()
