"""The client's input: SDL events in, InputEvents out, sent the moment they happen.

SdlInputCapture is fed every raw SDL event (the SDL presenter hands them to
its event listeners, see ``attach``) and calls ``send(events)`` at once for
each one that means something to the host -- never queued behind video.
One ``send`` call is one INPUT datagram.

- Keys go by physical scancode (rootstream.input.keymap), so the host's
  layout decides the character.  SDL's key-repeat events are dropped: the
  host's own key repeat runs while the key is held.
- The pointer is absolute (window -> stream pixels through the presenter's
  letterbox mapping) until the user captures it, then relative (raw xrel /
  yrel, what games want).  Clicks on a letterbox bar are not sent.
- Ctrl+Alt+Shift+Z captures/releases the pointer, +F toggles fullscreen, +S
  the stats overlay, +C asks for control (several viewers), +A and +D
  answer another viewer's request.  Those key presses are consumed, not
  forwarded.
- Every held key and button is tracked.  A HeldSnapshot goes out right after
  each release and every ``snapshot_interval`` (``tick``), so a host that
  lost a release heals; losing focus releases everything.
- Game controllers are opened as SDL announces them and numbered 0..15;
  their state is sent whole on every change and again with each periodic
  snapshot.

The object belongs to the thread that pumps SDL events (SDL requires it).
"""

from __future__ import annotations

from collections.abc import Callable

import sdl2

from rootstream.input.held import SNAPSHOT_INTERVAL_NS, HeldInput, Send
from rootstream.input.keymap import MOUSE_BUTTON_TO_EVDEV, scancode_to_evdev
from rootstream.input.sdl_gamepads import SdlGamepads
from rootstream.input.window_input import relative_steps
from rootstream.protocol.input import (
    WHEEL_DETENT,
    AbsoluteMotion,
    ButtonEvent,
    InputEvent,
    KeyEvent,
    WheelEvent,
)

WindowToStream = Callable[[float, float], "tuple[int, int] | None"]

_HOTKEY_MODS = (sdl2.KMOD_CTRL, sdl2.KMOD_ALT, sdl2.KMOD_SHIFT)
_AXIS_FIELDS = ("lx", "ly", "rx", "ry", "lt", "rt")  # SDL_CONTROLLER_AXIS_* order
_I16_MIN, _I16_MAX = -0x8000, 0x7FFF


def _clamp16(value: int) -> int:
    return max(_I16_MIN, min(_I16_MAX, value))


class SdlInputCapture(SdlGamepads, HeldInput):
    """Translate raw SDL events into InputEvents; see the module docstring.

    ``window_to_stream(x, y)`` maps a window position to stream pixels or
    None (a letterbox bar); ``stream_size()`` is the stream's (width, height).
    ``on_toggle_fullscreen`` / ``on_toggle_stats`` run for their hotkeys.
    """

    def __init__(self, window_to_stream: WindowToStream, send: Send,
                 stream_size: Callable[[], tuple[int, int]], *,
                 on_toggle_fullscreen: Callable[[], object] | None = None,
                 on_toggle_stats: Callable[[], object] | None = None,
                 on_control: Callable[[str], object] | None = None,
                 gamepads: bool = True,
                 snapshot_interval_ns: int = SNAPSHOT_INTERVAL_NS) -> None:
        super().__init__(send, on_toggle_fullscreen=on_toggle_fullscreen,
                         on_toggle_stats=on_toggle_stats, on_control=on_control,
                         snapshot_interval_ns=snapshot_interval_ns)
        self._window_to_stream = window_to_stream
        self._stream_size = stream_size
        self._consumed_scancodes: set[int] = set()  # hotkey presses whose release is ours too
        self._wheel_rest = [0.0, 0.0]
        self._detach: Callable[[], None] | None = None
        self._grabbed_window = None
        # Set when an X11InputReader reads this window's keys and absolute motion
        # on its own thread (client_service): then only hotkeys are read here,
        # except while the pointer is captured: SDL grabs the keyboard then, and
        # X sends a grabbed keyboard's keys to the grabbing connection only.
        # The shared held set makes a key pressed on one side and released on
        # the other (or seen by both at the switch) go out once.
        self.keys_read_elsewhere = False
        self.buttons_read_elsewhere = False  # the same for clicks and the wheel
        self._open_gamepads(gamepads)
        self._hotkeys = {
            sdl2.SDL_SCANCODE_Z: lambda event: self.toggle_pointer_capture(event.key.windowID),
            sdl2.SDL_SCANCODE_F: lambda event: self._toggle_fullscreen(),
            sdl2.SDL_SCANCODE_S: lambda event: self._toggle_stats(),
            sdl2.SDL_SCANCODE_C: lambda event: self._control("ask"),
            sdl2.SDL_SCANCODE_A: lambda event: self._control("accept"),
            sdl2.SDL_SCANCODE_D: lambda event: self._control("deny"),
            sdl2.SDL_SCANCODE_G: lambda event: self._control("give back"),
        }
        self._handlers = {
            sdl2.SDL_KEYDOWN: self._key_down,
            sdl2.SDL_KEYUP: self._key_up,
            sdl2.SDL_MOUSEBUTTONDOWN: self._mouse_button,
            sdl2.SDL_MOUSEBUTTONUP: self._mouse_button,
            sdl2.SDL_MOUSEMOTION: self._mouse_motion,
            sdl2.SDL_MOUSEWHEEL: self._mouse_wheel,
            sdl2.SDL_WINDOWEVENT: self._window_event,
            **self.gamepad_handlers(),
        }

    @classmethod
    def attach(cls, presenter, send: Send, **options) -> SdlInputCapture:
        """Wire a capture to an SDL presenter: its mapping, its fullscreen, its events."""
        options.setdefault("on_toggle_fullscreen", presenter.toggle_fullscreen)
        capture = cls(presenter.window_to_stream, send,
                      lambda: (presenter.width, presenter.height), **options)
        presenter.add_event_listener(capture.handle)
        capture._detach = lambda: presenter.remove_event_listener(capture.handle)
        return capture

    # -- public (snapshot, tick, release_all: HeldInput) ---------------------

    def handle(self, event) -> None:
        """Translate one raw SDL_Event (valid only during this call)."""
        handler = self._handlers.get(event.type)
        if handler is not None and not self.closed:
            handler(event)

    def toggle_pointer_capture(self, window_id: int = 0) -> None:
        """Capture (relative motion, keyboard grabbed) or release the pointer.

        While captured, the window also grabs the keyboard so Alt+Tab, Super
        and the like reach the host's game instead of the client's desktop.
        """
        want = not self.pointer_captured
        if sdl2.SDL_SetRelativeMouseMode(sdl2.SDL_TRUE if want else sdl2.SDL_FALSE) != 0:
            self.counters["capture_failed"] += 1
            return
        self.pointer_captured = want
        window = sdl2.SDL_GetWindowFromID(window_id) if want and window_id else None
        if self._grabbed_window is not None:
            sdl2.SDL_SetWindowKeyboardGrab(self._grabbed_window, sdl2.SDL_FALSE)
            self._grabbed_window = None
        if window:
            sdl2.SDL_SetWindowKeyboardGrab(window, sdl2.SDL_TRUE)
            self._grabbed_window = window

    def close(self) -> None:
        """Release everything on the host, let go of the pointer and the controllers."""
        if self.closed:
            return
        self.release_all()
        if self.pointer_captured:
            self.toggle_pointer_capture()
        self._close_gamepads()
        self.closed = True
        if self._detach is not None:
            self._detach()
        self._quit_gamepads()

    # -- keyboard --------------------------------------------------------------

    def _is_hotkey(self, keysym) -> bool:
        return keysym.scancode in self._hotkeys and all(keysym.mod & m for m in _HOTKEY_MODS)

    def _key_down(self, event) -> None:
        if event.key.repeat:
            self.counters["repeat_dropped"] += 1
            return
        keysym = event.key.keysym
        if self._is_hotkey(keysym):
            self._consumed_scancodes.add(keysym.scancode)
            self._hotkeys[keysym.scancode](event)
            return
        if self.keys_read_elsewhere and not self.pointer_captured:
            return
        code = scancode_to_evdev(keysym.scancode)
        if code is None:
            self.counters["key_unmapped"] += 1
            return
        if code not in self.held_keys:
            self.held_keys.add(code)
            self._send([KeyEvent(code, True)])

    def _key_up(self, event) -> None:
        scancode = event.key.keysym.scancode
        if scancode in self._consumed_scancodes:
            self._consumed_scancodes.discard(scancode)
            return
        if self.keys_read_elsewhere and not self.pointer_captured:
            return
        code = scancode_to_evdev(scancode)
        if code in self.held_keys:
            self.held_keys.discard(code)
            self._send([KeyEvent(code, False)])
            self._send_snapshot()

    # -- mouse -----------------------------------------------------------------

    def _absolute(self, x: int, y: int) -> AbsoluteMotion | None:
        position = self._window_to_stream(x, y)
        if position is None:
            return None
        width, height = self._stream_size()
        return AbsoluteMotion(position[0], position[1], width, height)

    def _mouse_button(self, event) -> None:
        if self.buttons_read_elsewhere and not self.pointer_captured:
            return
        down = event.type == sdl2.SDL_MOUSEBUTTONDOWN
        code = MOUSE_BUTTON_TO_EVDEV.get(event.button.button)
        if code is None:
            self.counters["button_unmapped"] += 1
            return
        if not down:
            if code in self.held_buttons:
                self.held_buttons.discard(code)
                self._send([ButtonEvent(code, False)])
                self._send_snapshot()
            return
        if code in self.held_buttons:
            return
        events: list[InputEvent] = []
        if not self.pointer_captured:
            # The click carries its own position: the motion before it may be lost.
            where = self._absolute(event.button.x, event.button.y)
            if where is None:
                self.counters["click_outside_picture"] += 1
                return
            events.append(where)
        events.append(ButtonEvent(code, True))
        self.held_buttons.add(code)
        self._send(events)

    def _mouse_motion(self, event) -> None:
        motion = event.motion
        if self.pointer_captured:
            events = relative_steps(motion.xrel, motion.yrel)
            if events:
                self._send(events)
            return
        if self.keys_read_elsewhere:
            return
        where = self._absolute(motion.x, motion.y)
        if where is not None:
            self._send([where])

    def _mouse_wheel(self, event) -> None:
        if self.buttons_read_elsewhere and not self.pointer_captured:
            return
        wheel = event.wheel
        sign = -1 if wheel.direction == sdl2.SDL_MOUSEWHEEL_FLIPPED else 1
        # preciseY/X are notches as floats (SDL 2.0.18+); 1/120 units keep
        # smooth scrolling smooth, with the sub-unit rest carried over.
        units = []
        for axis, precise in enumerate((wheel.preciseY, wheel.preciseX)):
            total = self._wheel_rest[axis] + sign * precise * WHEEL_DETENT
            whole = int(total)
            self._wheel_rest[axis] = total - whole
            units.append(_clamp16(whole))
        if units[0] or units[1]:
            self._send([WheelEvent(units[0], units[1])])

    # -- window ----------------------------------------------------------------

    def _window_event(self, event) -> None:
        if event.window.event == sdl2.SDL_WINDOWEVENT_FOCUS_LOST:
            # Keys released while another window has focus never reach us.
            self.release_all()
            self._consumed_scancodes.clear()
            if self.pointer_captured:
                self.toggle_pointer_capture()

__all__ = ["SNAPSHOT_INTERVAL_NS", "SdlInputCapture"]
