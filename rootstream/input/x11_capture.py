"""Input for the x11 presenter's window: what SdlInputCapture does for SDL's, without SDL.

The X11 input reader (``buttons=True``: nobody else takes the clicks on this
window) reads keys, motion, clicks and the wheel on its own thread;
client_service turns its batches into InputEvents with the translator and
hands them to ``send_read_elsewhere``.  This object keeps what the host must
be able to trust: the held keys and buttons, a HeldSnapshot after every
release and every ``snapshot_interval_ns`` (``tick``), and a release of
everything on close.

Hotkeys: the presenter hands its raw key events to ``handle`` on its own
thread (the only thread that may touch its window): Ctrl+Alt+Shift+F toggles
fullscreen, +S the stats overlay (blended into the picture by the
presenter), +Z captures or releases the pointer: the reader grabs it on its
own connection (rootstream.input.x11_pointer_grab) and sends relative
motion while it holds it; ``captured`` tells this object.  +C asks for
control, +A and +D answer another viewer's request.  The reader consumes
the same presses, so none reaches the host.  Game controllers go through
SDL's game-controller API (rootstream.input.sdl_gamepads): a GamepadPump
thread pumps SDL's events without an SDL window and hands them to
``handle_sdl``.
"""

from __future__ import annotations

from collections.abc import Callable

from rootstream._native import xlib
from rootstream._native.xlib import ffi
from rootstream.input.held import SNAPSHOT_INTERVAL_NS, HeldInput, Send
from rootstream.input.sdl_gamepads import SdlGamepads
from rootstream.input.window_input import HOTKEY_CODES
from rootstream.input.x11_reader import X_KEYCODE_OFFSET

_HOTKEY_STATE = xlib.SHIFT_MASK | xlib.CONTROL_MASK | xlib.MOD1_MASK
KEY_Z, KEY_F, KEY_S = 44, 33, 31
CONTROL_KEYS = {46: "ask", 30: "accept", 32: "deny", 34: "give back"}  # C, A, D, G


class X11WindowCapture(SdlGamepads, HeldInput):
    """Held state, snapshots and hotkeys for the x11 presenter; see the module docstring."""

    def __init__(self, send: Send, *,
                 on_toggle_fullscreen: Callable[[], object] | None = None,
                 on_toggle_stats: Callable[[], object] | None = None,
                 on_toggle_pointer_capture: Callable[[], object] | None = None,
                 on_control: Callable[[str], object] | None = None,
                 log: Callable[[str], None] = print,
                 snapshot_interval_ns: int = SNAPSHOT_INTERVAL_NS) -> None:
        super().__init__(send, on_toggle_fullscreen=on_toggle_fullscreen,
                         on_toggle_stats=on_toggle_stats, on_control=on_control,
                         snapshot_interval_ns=snapshot_interval_ns)
        self._log = log
        self._on_toggle_pointer_capture = on_toggle_pointer_capture
        self._gamepad_handlers = self.gamepad_handlers()
        self._open_gamepads(False)  # GamepadPump opens SDL's controllers on its own thread

    def handle_sdl(self, event) -> None:
        """An SDL event from the GamepadPump's thread: a controller came, went or moved."""
        handler = self._gamepad_handlers.get(event.type)
        if handler is not None and not self.closed:
            handler(event)

    def close_gamepads(self) -> None:
        """On the GamepadPump's thread, before ``close``: the host's gamepads go too."""
        self._close_gamepads()
        self._quit_gamepads()

    def captured(self, captured: bool, problem: str = "") -> None:
        """The reader grabbed the pointer or let it go (its thread, under the service's
        lock); a refused grab is said once."""
        was, self.pointer_captured = self.pointer_captured, captured and not self.closed
        if self.pointer_captured != was:
            self._log("rootstream: pointer captured (relative motion); Ctrl+Alt+Shift+Z "
                      "releases it" if self.pointer_captured else "rootstream: pointer released")
        if problem:
            if not self.counters["capture_failed"]:
                self._log(f"rootstream: cannot capture the pointer: {problem}")
            self.counters["capture_failed"] += 1

    def close(self) -> None:
        """Release everything on the host."""
        if not self.closed:
            self.release_all()
            self.closed = True

    # -- the presenter's thread --------------------------------------------------------

    def handle(self, event) -> None:
        """A raw XEvent from the presenter: act on a hotkey press."""
        if event.type != 2 or self.closed:  # KeyPress
            return
        key = ffi.cast("XKeyEvent *", event)
        code = key.keycode - X_KEYCODE_OFFSET
        if code not in HOTKEY_CODES or key.state & _HOTKEY_STATE != _HOTKEY_STATE:
            return
        if code == KEY_F:
            self._toggle_fullscreen()
        elif code == KEY_S:
            self._toggle_stats()
        elif code in CONTROL_KEYS:
            self._control(CONTROL_KEYS[code])
        elif code == KEY_Z and self._on_toggle_pointer_capture is not None:
            self._on_toggle_pointer_capture()


__all__ = ["X11WindowCapture"]
