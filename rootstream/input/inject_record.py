"""The `record` injector: keeps what it would have injected, for tests and dry runs.

It goes through the same held-state bookkeeping as the real backends, so what
it records is exactly what a real device would have received: duplicates
dropped, snapshots turned into the presses and releases they imply.
"""

from __future__ import annotations

from rootstream.input.injector import Injector
from rootstream.protocol.input import (
    AbsoluteMotion,
    ButtonEvent,
    GamepadAdded,
    GamepadRemoved,
    GamepadState,
    InputEvent,
    KeyEvent,
    RelativeMotion,
    WheelEvent,
)


class RecordInjector(Injector):
    name = "record"

    def __init__(self) -> None:
        super().__init__()
        self.events: list[InputEvent] = []
        self.flushes = 0

    def _key(self, code: int, down: bool) -> bool:
        self.events.append(KeyEvent(code, down))
        return True

    def _button(self, code: int, down: bool) -> bool:
        self.events.append(ButtonEvent(code, down))
        return True

    def _scroll(self, vertical: int, horizontal: int) -> bool:
        self.events.append(WheelEvent(vertical, horizontal))
        return True

    def _move_relative(self, dx: int, dy: int) -> bool:
        self.events.append(RelativeMotion(dx, dy))
        return True

    def _move_absolute(self, x: int, y: int, width: int, height: int) -> bool:
        self.events.append(AbsoluteMotion(x, y, width, height))
        return True

    def _gamepad_added(self, index: int) -> bool:
        self.events.append(GamepadAdded(index))
        return True

    def _gamepad_state(self, old: GamepadState, new: GamepadState) -> bool:
        self.events.append(new)
        return True

    def _gamepad_removed(self, index: int) -> bool:
        self.events.append(GamepadRemoved(index))
        return True

    def _flush(self) -> None:
        self.flushes += 1

    def _close(self) -> None:
        """Nothing to free: the recording stays readable after close()."""
