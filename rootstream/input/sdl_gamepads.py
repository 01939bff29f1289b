"""Game controllers through SDL's game-controller API, for any window's capture.

SdlGamepads is mixed into a HeldInput capture (it uses ``_send`` and
``counters``): SdlInputCapture feeds it the SDL window's controller events,
and X11WindowCapture, whose window is not SDL's, feeds it from
GamepadPump, a thread that pumps SDL's events without any SDL window (SDL's
video subsystem is never started there, so any one thread may pump).

Controllers are opened as SDL announces them and numbered 0..15; their
state is sent whole on every change and again with each periodic snapshot.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

import sdl2

from rootstream.protocol.input import (
    GAMEPAD_BUTTONS,
    MAX_GAMEPADS,
    GamepadAdded,
    GamepadRemoved,
    GamepadState,
    InputEvent,
)

_AXIS_FIELDS = ("lx", "ly", "rx", "ry", "lt", "rt")  # SDL_CONTROLLER_AXIS_* order


class SdlGamepads:
    """Controller state and events; the host class is a HeldInput."""

    def _open_gamepads(self, enabled: bool) -> None:
        self._controllers: dict[int, tuple[int, object]] = {}  # SDL instance id -> (index, handle)
        self.gamepads: dict[int, GamepadState] = {}
        self._gamepads_initialised = False
        if enabled:
            if sdl2.SDL_InitSubSystem(sdl2.SDL_INIT_GAMECONTROLLER) == 0:
                self._gamepads_initialised = True
            else:
                self.counters["gamepad_init_failed"] += 1

    def gamepad_handlers(self) -> dict[int, Callable]:
        """SDL event type -> handler, for the capture's dispatch table."""
        return {
            sdl2.SDL_CONTROLLERDEVICEADDED: self._controller_added,
            sdl2.SDL_CONTROLLERDEVICEREMOVED: self._controller_removed,
            sdl2.SDL_CONTROLLERBUTTONDOWN: self._controller_button,
            sdl2.SDL_CONTROLLERBUTTONUP: self._controller_button,
            sdl2.SDL_CONTROLLERAXISMOTION: self._controller_axis,
        }

    def _close_gamepads(self) -> None:
        """Close every controller and tell the host they are gone."""
        removed = [GamepadRemoved(i) for i in sorted(i for i, _ in self._controllers.values())]
        for _, handle in self._controllers.values():
            sdl2.SDL_GameControllerClose(handle)
        self._controllers.clear()
        self.gamepads.clear()
        if removed:
            self._send(removed)

    def _quit_gamepads(self) -> None:
        if self._gamepads_initialised:
            self._gamepads_initialised = False
            sdl2.SDL_QuitSubSystem(sdl2.SDL_INIT_GAMECONTROLLER)

    def _with_snapshot(self) -> list[InputEvent]:
        return list(self.gamepads.values())  # each periodic snapshot carries them whole

    def _controller_added(self, event) -> None:
        handle = sdl2.SDL_GameControllerOpen(event.cdevice.which)  # a device index
        if not handle:
            self.counters["gamepad_open_failed"] += 1
            return
        instance = sdl2.SDL_JoystickInstanceID(sdl2.SDL_GameControllerGetJoystick(handle))
        if instance in self._controllers:  # SDL announces a device once per subsystem init
            sdl2.SDL_GameControllerClose(handle)
            return
        free = [i for i in range(MAX_GAMEPADS) if i not in self.gamepads]
        if not free:
            self.counters["gamepad_overflow"] += 1
            sdl2.SDL_GameControllerClose(handle)
            return
        index = free[0]
        self._controllers[instance] = (index, handle)
        self.gamepads[index] = state = self._read_state(index, handle)
        self._send([GamepadAdded(index), state])

    def controller(self, index: int):
        """The SDL_GameController handle numbered ``index`` here, or None (rumble)."""
        return next((h for i, h in self._controllers.values() if i == index), None)

    def _read_state(self, index: int, handle) -> GamepadState:
        buttons = 0
        for button in range(len(GAMEPAD_BUTTONS)):
            if sdl2.SDL_GameControllerGetButton(handle, button):
                buttons |= 1 << button
        axes = [sdl2.SDL_GameControllerGetAxis(handle, axis) for axis in range(6)]
        axes[4], axes[5] = max(axes[4], 0), max(axes[5], 0)
        return GamepadState(index, buttons, *axes)

    def _controller_removed(self, event) -> None:
        entry = self._controllers.pop(event.cdevice.which, None)  # an instance id
        if entry is None:
            return
        index, handle = entry
        sdl2.SDL_GameControllerClose(handle)
        del self.gamepads[index]
        self._send([GamepadRemoved(index)])

    def _update_gamepad(self, instance: int, **changes) -> None:
        entry = self._controllers.get(instance)
        if entry is None:
            return
        index = entry[0]
        old = self.gamepads[index]
        new = dataclasses.replace(old, **changes)
        if new != old:
            self.gamepads[index] = new
            self._send([new])

    def _controller_button(self, event) -> None:
        button = event.cbutton.button
        if not 0 <= button < len(GAMEPAD_BUTTONS):  # newer SDL buttons have no wire bit
            return
        entry = self._controllers.get(event.cbutton.which)
        if entry is None:
            return
        bit = 1 << button
        buttons = self.gamepads[entry[0]].buttons
        buttons = buttons | bit if event.type == sdl2.SDL_CONTROLLERBUTTONDOWN else buttons & ~bit
        self._update_gamepad(event.cbutton.which, buttons=buttons)

    def _controller_axis(self, event) -> None:
        axis = event.caxis.axis
        if not 0 <= axis < len(_AXIS_FIELDS):
            return
        value = event.caxis.value
        if axis >= 4:
            value = max(value, 0)  # triggers rest at 0; some drivers report -32768 at rest
        self._update_gamepad(event.caxis.which, **{_AXIS_FIELDS[axis]: value})




class GamepadPump:
    """A thread that opens SDL's game-controller subsystem and hands its events on.

    ``open(enabled)`` builds the SdlGamepads object on the pump's thread (SDL
    wants init, pumping and quitting on one thread); ``handle(event)`` is
    called there for each SDL event, and ``close()`` there at the end.  It
    polls every POLL_S while a controller is open, else every IDLE_S (a
    plugged-in controller is noticed within that).
    """

    POLL_S = 0.002
    IDLE_S = 0.1

    def __init__(self, gamepads: SdlGamepads, handle: Callable[[object], None],
                 close: Callable[[], None], *, enabled: bool = True) -> None:
        self._gamepads = gamepads
        self._handle = handle
        self._close = close
        self._enabled = enabled
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gamepads", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._opened.wait(5)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)

    def _run(self) -> None:
        self._gamepads._open_gamepads(self._enabled)
        self._opened.set()
        event = sdl2.SDL_Event()
        try:
            while not self._stop.is_set():
                while sdl2.SDL_PollEvent(event):
                    self._handle(event)
                time.sleep(self.POLL_S if self._gamepads.gamepads else self.IDLE_S)
        finally:
            self._close()


__all__ = ["GamepadPump", "SdlGamepads"]
