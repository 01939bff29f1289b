"""The host-side injector interface and the held-state bookkeeping all backends share.

An injector turns InputEvents into input the host's desktop and games see.
Whatever the backend, it remembers every key and mouse button it pressed and
every controller state it set, because that is the only way to guarantee
nothing stays held: ``release_all()`` undoes exactly what this injector did,
a HeldSnapshot from the client is reconciled against it, and a repeated press
(a duplicated datagram, a snapshot racing an edge) is not pressed twice.

Backends implement the small ``_key``/``_button``/... primitives; each returns
False when the backend cannot express that input (a key the X server has no
keycode for, a gamepad on XTEST), which is counted rather than raised.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable

from rootstream.protocol.input import (
    WHEEL_DETENT,
    AbsoluteMotion,
    ButtonEvent,
    GamepadAdded,
    GamepadRemoved,
    GamepadState,
    HeldSnapshot,
    InputEvent,
    KeyEvent,
    RelativeMotion,
    WheelEvent,
    is_mouse_button_code,
)


class WheelDetents:
    """Hi-res wheel units (1/120 detent) -> whole detents, carrying the remainder.

    Backends that can only click (X buttons 4-7, the legacy REL_WHEEL) must
    not lose the slow, sub-detent scrolling of a smooth wheel or touchpad.
    """

    def __init__(self) -> None:
        self._remainder = [0, 0]

    def add(self, vertical: int, horizontal: int) -> tuple[int, int]:
        detents = []
        for axis, delta in enumerate((vertical, horizontal)):
            total = self._remainder[axis] + delta
            whole = int(total / WHEEL_DETENT)  # toward zero: the remainder keeps its sign
            self._remainder[axis] = total - whole * WHEEL_DETENT
            detents.append(whole)
        return detents[0], detents[1]


class Injector(ABC):
    """One host input backend; see the module docstring for the contract."""

    name = "?"

    def __init__(self) -> None:
        self.held_keys: set[int] = set()
        self.held_buttons: set[int] = set()
        self.gamepads: dict[int, GamepadState] = {}
        # Why input was not delivered: "key_unsupported", "gamepad_unsupported", ...
        self.counters: Counter[str] = Counter()
        self.fallbacks: list[str] = []  # set by open_injector("auto"): backends that failed first
        self.closed = False

    # -- backend primitives ------------------------------------------------

    @abstractmethod
    def _key(self, code: int, down: bool) -> bool: ...

    @abstractmethod
    def _button(self, code: int, down: bool) -> bool: ...

    @abstractmethod
    def _scroll(self, vertical: int, horizontal: int) -> bool: ...

    @abstractmethod
    def _move_relative(self, dx: int, dy: int) -> bool: ...

    @abstractmethod
    def _move_absolute(self, x: int, y: int, width: int, height: int) -> bool: ...

    @abstractmethod
    def _gamepad_added(self, index: int) -> bool: ...

    @abstractmethod
    def _gamepad_state(self, old: GamepadState, new: GamepadState) -> bool: ...

    @abstractmethod
    def _gamepad_removed(self, index: int) -> bool: ...

    @abstractmethod
    def _flush(self) -> None:
        """Push what the primitives queued (XFlush, EV_SYN); called once per batch."""

    @abstractmethod
    def _close(self) -> None:
        """Free the backend's devices or connection."""

    # -- public interface --------------------------------------------------

    def inject(self, event: InputEvent) -> None:
        self.inject_many((event,))

    def inject_many(self, events: Iterable[InputEvent]) -> None:
        """Deliver a datagram's events in order, then flush once."""
        for event in events:
            self._dispatch(event)
        self._flush()

    def release_all(self) -> None:
        """Release every key and button this injector holds and centre every gamepad."""
        for code in sorted(self.held_keys):
            self._set_key(code, False)
        for code in sorted(self.held_buttons):
            self._set_button(code, False)
        for index, state in list(self.gamepads.items()):
            neutral = GamepadState(index)
            if state != neutral:
                self._set_gamepad(neutral)
        self._flush()

    def close(self) -> None:
        """Release everything, then free the backend; safe to call twice."""
        if self.closed:
            return
        try:
            self.release_all()
            for index in list(self.gamepads):
                self._remove_gamepad(index)
            self._flush()
        finally:
            self.closed = True
            self._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- bookkeeping -------------------------------------------------------

    def _dispatch(self, event: InputEvent) -> None:
        cls = type(event)
        if cls is KeyEvent:
            self._set_key(event.code, event.down)
        elif cls is ButtonEvent:
            self._set_button(event.code, event.down)
        elif cls is RelativeMotion:
            self._count(self._move_relative(event.dx, event.dy), "motion_unsupported")
        elif cls is AbsoluteMotion:
            self._count(self._move_absolute(event.x, event.y, event.width, event.height),
                        "motion_unsupported")
        elif cls is WheelEvent:
            self._count(self._scroll(event.vertical, event.horizontal), "wheel_unsupported")
        elif cls is GamepadState:
            self._set_gamepad(event)
        elif cls is GamepadAdded:
            self._add_gamepad(event.index)
        elif cls is GamepadRemoved:
            self._remove_gamepad(event.index)
        elif cls is HeldSnapshot:
            self.reconcile(event.codes)
        else:
            self.counters["unknown_event"] += 1

    def _count(self, delivered: bool, reason: str) -> None:
        if not delivered:
            self.counters[reason] += 1

    def _set_key(self, code: int, down: bool) -> None:
        self._set_held(self.held_keys, self._key, "key", code, down)

    def _set_button(self, code: int, down: bool) -> None:
        self._set_held(self.held_buttons, self._button, "button", code, down)

    def _set_held(self, held: set[int], primitive, what: str, code: int, down: bool) -> None:
        if down == (code in held):
            # A duplicate or a snapshot that already applied it: pressing
            # twice would look like auto-repeat to the host.
            self.counters[f"{what}_unchanged"] += 1
            return
        if not primitive(code, down):
            self.counters[f"{what}_unsupported"] += 1
            return
        if down:
            held.add(code)
        else:
            held.discard(code)

    def reconcile(self, codes: Iterable[int]) -> None:
        """Make the held keys and buttons exactly ``codes`` (a client snapshot)."""
        wanted = set(codes)
        for code in sorted(self.held_keys - wanted):
            self.counters["snapshot_released"] += 1
            self._set_key(code, False)
        for code in sorted(self.held_buttons - wanted):
            self.counters["snapshot_released"] += 1
            self._set_button(code, False)
        for code in sorted(wanted - self.held_keys - self.held_buttons):
            self.counters["snapshot_pressed"] += 1
            if is_mouse_button_code(code):
                self._set_button(code, True)
            else:
                self._set_key(code, True)

    def _add_gamepad(self, index: int) -> bool:
        if index in self.gamepads:
            return True
        if not self._gamepad_added(index):
            self.counters["gamepad_unsupported"] += 1
            return False
        self.gamepads[index] = GamepadState(index)
        return True

    def _set_gamepad(self, state: GamepadState) -> None:
        # A state for an unknown controller implies it was added: the
        # GamepadAdded datagram may be the one that was lost.
        if not self._add_gamepad(state.index):
            return
        old = self.gamepads[state.index]
        if old == state:
            return
        if self._gamepad_state(old, state):
            self.gamepads[state.index] = state
        else:
            self.counters["gamepad_unsupported"] += 1

    def _remove_gamepad(self, index: int) -> None:
        if index not in self.gamepads:
            return
        self._gamepad_removed(index)
        del self.gamepads[index]
