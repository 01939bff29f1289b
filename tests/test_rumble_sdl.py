"""The client's side of rumble: messages played on an SDL game controller.

The controller is an SDL virtual joystick (SDL_JoystickAttachVirtualEx, SDL
2.26+; pysdl2-dll ships it) whose Rumble callback records what SDL asks the
motors to do, so the test sees exactly what a real pad's driver would get:
the strengths at once, the stop when the duration runs out (SDL's own timer),
a stop message, a duration of 0 that lasts, and the stop at session end.
"""

from __future__ import annotations

import ctypes
import time

import pytest

sdl2 = pytest.importorskip("sdl2")

from rootstream.input.rumble_link import RumblePlayer  # noqa: E402
from rootstream.protocol.control import Rumble  # noqa: E402


class VirtualPad:
    """An SDL virtual game controller that records its rumble callbacks."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, int, int]] = []
        desc = sdl2.SDL_VirtualJoystickDesc()
        desc.version = sdl2.SDL_VIRTUAL_JOYSTICK_DESC_VERSION
        desc.type = sdl2.SDL_JOYSTICK_TYPE_GAMECONTROLLER
        desc.naxes, desc.nbuttons, desc.name = 6, 15, b"rootstream rumble pad"
        # Kept referenced: SDL calls it from C for as long as the pad lives.
        self._callback = type(desc.Rumble)(self._rumble)
        desc.Rumble = self._callback
        self.device_index = sdl2.SDL_JoystickAttachVirtualEx(ctypes.byref(desc))
        assert self.device_index >= 0, sdl2.SDL_GetError()
        self.handle = sdl2.SDL_GameControllerOpen(self.device_index)
        assert self.handle, sdl2.SDL_GetError()

    def _rumble(self, _userdata, low: int, high: int) -> int:
        self.calls.append((time.monotonic(), low, high))
        return 0

    def wait(self, count: int, timeout: float = 3.0) -> None:
        """Run SDL's joystick update (its rumble timer) until ``count`` calls were seen."""
        deadline = time.monotonic() + timeout
        while len(self.calls) < count and time.monotonic() < deadline:
            sdl2.SDL_GameControllerUpdate()
            time.sleep(0.002)

    def close(self) -> None:
        sdl2.SDL_GameControllerClose(self.handle)
        sdl2.SDL_JoystickDetachVirtual(self.device_index)


@pytest.fixture
def pad():
    assert sdl2.SDL_Init(sdl2.SDL_INIT_GAMECONTROLLER) == 0, sdl2.SDL_GetError()
    pad = VirtualPad()
    yield pad
    pad.close()
    sdl2.SDL_QuitSubSystem(sdl2.SDL_INIT_GAMECONTROLLER)


def test_strengths_reach_the_motors_and_sdl_stops_them_when_the_duration_ends(pad):
    player = RumblePlayer(lambda index: pad.handle if index == 0 else None)
    started = time.monotonic()
    assert player.play(Rumble(0, 0xC000, 0x4000, 200))
    assert pad.calls[-1][1:] == (0xC000, 0x4000)  # at once, on this thread
    pad.wait(2)
    (_, low, high) = pad.calls[1]
    assert (low, high) == (0, 0)
    assert 0.19 <= pad.calls[1][0] - started <= 0.5


def test_a_stop_message_and_an_endless_effect(pad):
    player = RumblePlayer(lambda index: pad.handle if index == 0 else None)
    player.play(Rumble(0, 0xFFFF, 0xFFFF, 0))  # 0: until the next message
    pad.wait(2, timeout=0.4)
    assert [call[1:] for call in pad.calls] == [(0xFFFF, 0xFFFF)]
    player.play(Rumble(0, 0, 0, 0))
    assert pad.calls[-1][1:] == (0, 0)


def test_session_end_stops_what_rumbles_and_an_unknown_pad_is_counted(pad):
    player = RumblePlayer(lambda index: pad.handle if index == 0 else None)
    player.play(Rumble(0, 0x1000, 0x2000, 0))
    assert not player.play(Rumble(3, 0xFFFF, 0xFFFF, 100))
    assert player.counters["rumble_no_controller"] == 1
    player.stop_all()
    assert pad.calls[-1][1:] == (0, 0)
    calls = len(pad.calls)
    player.stop_all()  # nothing rumbles any more: nothing is sent
    assert len(pad.calls) == calls
