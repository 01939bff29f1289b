"""SdlInputCapture on a real SDL window on Xvfb, driven by xdotool and a virtual gamepad.

xdotool (Debian package `xdotool`) sends real X input through XTEST; SDL's
x11 driver turns it into SDL events; the capture must turn those into the
InputEvents below.  Every batch the capture sends is also encoded with the
wire codec, so nothing it produces could be refused on the wire.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import time

import cffi
import pytest
import sdl2
from virtual_pad import attach_virtual_pad

from rootstream.input.sdl_capture import SdlInputCapture
from rootstream.protocol.input import (
    BTN_LEFT,
    BTN_MIDDLE,
    BTN_RIGHT,
    BTN_SIDE,
    GAMEPAD_BUTTON_BIT,
    AbsoluteMotion,
    ButtonEvent,
    GamepadAdded,
    GamepadRemoved,
    GamepadState,
    HeldSnapshot,
    KeyEvent,
    RelativeMotion,
    WheelEvent,
    encode_input,
)

KEY_A, KEY_LEFTSHIFT, KEY_LEFTCTRL, KEY_LEFTALT = 30, 42, 29, 56
BAR = 20  # the window's top 20 rows play a letterbox bar

pytestmark = pytest.mark.skipif(shutil.which("xdotool") is None, reason="apt install xdotool")


class Desk:
    """One SDL window at (0, 0) on Xvfb showing a 1280x720 stream at half size."""

    def __init__(self, xvfb):
        self.env = xvfb.env()
        assert sdl2.SDL_InitSubSystem(sdl2.SDL_INIT_VIDEO) == 0, sdl2.SDL_GetError()
        self.window = sdl2.SDL_CreateWindow(b"rootstream input test", 0, 0, 640, 360,
                                            sdl2.SDL_WINDOW_SHOWN)
        assert self.window, sdl2.SDL_GetError()
        self.sent: list[list] = []
        self.fullscreen_toggles = 0
        self.capture = SdlInputCapture(self.window_to_stream, self.send, lambda: (1280, 720),
                                       on_toggle_fullscreen=self.toggle_fullscreen)
        self._event = sdl2.SDL_Event()
        # No window manager: focus the window ourselves once it is mapped.
        self.pump(0.05, until=lambda: sdl2.SDL_GetWindowFlags(self.window)
                  & sdl2.SDL_WINDOW_SHOWN)
        sdl2.SDL_SetWindowInputFocus(self.window)
        self.pump(0.05, until=lambda: sdl2.SDL_GetKeyboardFocus())
        self.sent.clear()

    @staticmethod
    def window_to_stream(x, y):
        return None if y < BAR else (2 * x, 2 * y)

    def send(self, events):
        encode_input(events)
        self.sent.append(list(events))

    def toggle_fullscreen(self):
        self.fullscreen_toggles += 1

    def xdotool(self, *args: str) -> None:
        subprocess.run(["xdotool", *args], env=self.env, check=True, timeout=10)

    def pump(self, seconds: float = 0.0, until=None, timeout: float = 5.0) -> list[list]:
        """Feed SDL events to the capture; stop ``seconds`` after ``until()`` holds."""
        deadline = time.monotonic() + timeout
        while until is not None and not until() and time.monotonic() < deadline:
            self._drain()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._drain()
        return self.sent

    def _drain(self) -> None:
        while sdl2.SDL_PollEvent(ctypes.byref(self._event)):
            self.capture.handle(self._event)
        time.sleep(0.002)

    def take(self, count: int, settle: float = 0.1) -> list[list]:
        """Wait for ``count`` sends (and ``settle`` seconds more); return and forget them."""
        self.pump(settle, until=lambda: len(self.sent) >= count)
        got, self.sent = self.sent, []
        return got

    def close(self) -> None:
        self.capture.close()
        sdl2.SDL_DestroyWindow(self.window)
        sdl2.SDL_QuitSubSystem(sdl2.SDL_INIT_VIDEO)


@pytest.fixture
def desk(xvfb, monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb.display)
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    sdl2.SDL_SetHint(sdl2.SDL_HINT_JOYSTICK_ALLOW_BACKGROUND_EVENTS, b"1")
    desk = Desk(xvfb)
    try:
        yield desk
    finally:
        desk.close()


def test_key_press_release_then_snapshot(desk):
    desk.xdotool("key", "a")
    assert desk.take(3) == [[KeyEvent(KEY_A, True)], [KeyEvent(KEY_A, False)], [HeldSnapshot()]]


def test_modifier_chord_and_snapshot_lists_what_is_still_held(desk):
    desk.xdotool("keydown", "shift")
    desk.xdotool("key", "a")
    desk.xdotool("keyup", "shift")
    assert desk.take(6) == [
        [KeyEvent(KEY_LEFTSHIFT, True)], [KeyEvent(KEY_A, True)], [KeyEvent(KEY_A, False)],
        [HeldSnapshot((KEY_LEFTSHIFT,))], [KeyEvent(KEY_LEFTSHIFT, False)], [HeldSnapshot()]]


def test_sdl_key_repeat_is_not_forwarded(desk):
    # Xvfb auto-repeats a held key after 660 ms; SDL marks those presses `repeat`.
    desk.xdotool("keydown", "a")
    desk.pump(1.2)
    desk.xdotool("keyup", "a")
    assert desk.take(3) == [[KeyEvent(KEY_A, True)], [KeyEvent(KEY_A, False)], [HeldSnapshot()]]
    assert desk.capture.counters["repeat_dropped"] > 0


def test_pointer_moves_in_stream_pixels_and_not_over_the_bar(desk):
    desk.xdotool("mousemove", "100", "50")
    desk.xdotool("mousemove", "100", "5")  # on the bar: nothing to send
    desk.xdotool("mousemove", "639", "359")
    assert desk.take(2) == [[AbsoluteMotion(200, 100, 1280, 720)],
                            [AbsoluteMotion(1278, 718, 1280, 720)]]


def test_clicks_carry_their_position_and_release_sends_a_snapshot(desk):
    desk.xdotool("mousemove", "100", "50")
    desk.take(1)
    desk.xdotool("click", "1")
    where = AbsoluteMotion(200, 100, 1280, 720)
    assert desk.take(3) == [[where, ButtonEvent(BTN_LEFT, True)], [ButtonEvent(BTN_LEFT, False)],
                            [HeldSnapshot()]]
    for x_button, code in (("3", BTN_RIGHT), ("2", BTN_MIDDLE), ("8", BTN_SIDE)):
        desk.xdotool("click", x_button)
        assert desk.take(3)[0] == [where, ButtonEvent(code, True)]


def test_click_on_the_bar_is_not_sent(desk):
    desk.xdotool("mousemove", "100", "5")
    desk.xdotool("click", "1")
    assert desk.take(0, settle=0.3) == []
    assert desk.capture.counters["click_outside_picture"] == 1


def test_wheel_in_hi_res_units(desk):
    desk.xdotool("mousemove", "100", "50")
    desk.take(1)
    for x_button in ("4", "5", "6", "7"):
        desk.xdotool("click", x_button)
    assert desk.take(4) == [[WheelEvent(120, 0)], [WheelEvent(-120, 0)],
                            [WheelEvent(0, -120)], [WheelEvent(0, 120)]]


def test_hotkeys_are_consumed_and_capture_switches_to_relative_motion(desk):
    desk.xdotool("key", "ctrl+alt+shift+z")
    sent = desk.take(9)
    keys = [event for batch in sent for event in batch if isinstance(event, KeyEvent)]
    assert {event.code for event in keys} == {KEY_LEFTCTRL, KEY_LEFTALT, KEY_LEFTSHIFT}
    assert sent[-1] == [HeldSnapshot()]
    assert desk.capture.pointer_captured
    assert sdl2.SDL_GetRelativeMouseMode() == sdl2.SDL_TRUE
    assert sdl2.SDL_GetWindowKeyboardGrab(desk.window) == sdl2.SDL_TRUE

    desk.xdotool("mousemove_relative", "--", "10", "5")
    desk.xdotool("mousemove_relative", "--", "-7", "3")
    assert desk.take(2) == [[RelativeMotion(10, 5)], [RelativeMotion(-7, 3)]]

    desk.xdotool("key", "ctrl+alt+shift+z")
    desk.take(9)
    assert not desk.capture.pointer_captured
    assert sdl2.SDL_GetWindowKeyboardGrab(desk.window) == sdl2.SDL_FALSE

    desk.xdotool("key", "ctrl+alt+shift+s", "ctrl+alt+shift+f")
    sent = desk.take(18)
    assert all(event.code != 31 and event.code != 33  # KEY_S, KEY_F never forwarded
               for batch in sent for event in batch if isinstance(event, KeyEvent))
    assert desk.capture.stats_visible and desk.fullscreen_toggles == 1


def test_control_hotkeys_are_consumed_and_name_their_action(desk):
    actions = []
    desk.capture._on_control = actions.append  # what ClientInput hands in as on_control
    desk.xdotool("key", "ctrl+alt+shift+c", "ctrl+alt+shift+a", "ctrl+alt+shift+d")
    sent = desk.take(27)
    assert actions == ["ask", "accept", "deny"]
    assert all(event.code not in (46, 30, 32)  # KEY_C, KEY_A, KEY_D never forwarded
               for batch in sent for event in batch if isinstance(event, KeyEvent))


def _focus_nothing(display: str) -> None:
    """Take the keyboard focus away from every window, as another X client would."""
    ffi = cffi.FFI()
    ffi.cdef("""typedef struct _XDisplay Display;
                Display *XOpenDisplay(const char *); int XCloseDisplay(Display *);
                int XSetInputFocus(Display *, unsigned long, int, unsigned long);""")
    x11 = ffi.dlopen("libX11.so.6")
    dpy = x11.XOpenDisplay(display.encode())
    x11.XSetInputFocus(dpy, 0, 0, 0)  # None, RevertToNone, CurrentTime
    x11.XCloseDisplay(dpy)


def test_focus_loss_releases_everything(desk):
    desk.xdotool("mousemove", "100", "50")
    desk.xdotool("keydown", "a")
    desk.xdotool("mousedown", "1")
    desk.take(3)
    _focus_nothing(desk.env["DISPLAY"])
    # SDL itself may release the key first (it resets its keyboard state on
    # focus loss); either way both releases go out and the last word is an
    # empty snapshot.
    sent = desk.take(2, settle=0.3)
    events = [event for batch in sent for event in batch]
    assert {e for e in events if not isinstance(e, HeldSnapshot)} == {
        KeyEvent(KEY_A, False), ButtonEvent(BTN_LEFT, False)}
    assert sent[-1] == [HeldSnapshot()]
    desk.xdotool("keyup", "a")
    desk.xdotool("mouseup", "1")
    assert desk.take(0, settle=0.3) == []  # already released: nothing more


def test_periodic_snapshot(desk):
    capture = desk.capture
    start = time.monotonic_ns() + 10**9
    assert capture.tick(start)  # due, whatever happened before
    assert desk.take(1) == [[HeldSnapshot()]]
    assert not capture.tick(start + 100_000_000)
    desk.xdotool("keydown", "shift")
    desk.take(1)
    assert capture.tick(start + 300_000_000)
    assert desk.take(1) == [[HeldSnapshot((KEY_LEFTSHIFT,))]]
    desk.xdotool("keyup", "shift")


def test_virtual_gamepad_is_numbered_and_its_state_sent_whole(desk):
    device_index = attach_virtual_pad()
    joystick = sdl2.SDL_JoystickOpen(device_index)
    try:
        assert desk.take(1) == [[GamepadAdded(0), GamepadState(0)]]
        sdl2.SDL_JoystickSetVirtualButton(joystick, 0, 1)  # a
        sdl2.SDL_JoystickSetVirtualButton(joystick, 14, 1)  # d-pad right
        sdl2.SDL_JoystickSetVirtualAxis(joystick, 0, -20000)  # left stick x
        sdl2.SDL_JoystickSetVirtualAxis(joystick, 5, 32767)  # right trigger, fully in
        expected = GamepadState(0, GAMEPAD_BUTTON_BIT["a"] | GAMEPAD_BUTTON_BIT["dpad_right"],
                                lx=-20000, rt=32767)
        desk.pump(0.1, until=lambda: desk.capture.gamepads.get(0) == expected)
        assert desk.sent[-1] == [expected]
        desk.sent.clear()
        assert desk.capture.tick(time.monotonic_ns() + 10**9)
        assert desk.take(1) == [[HeldSnapshot(), expected]]
    finally:
        sdl2.SDL_JoystickClose(joystick)
    sdl2.SDL_JoystickDetachVirtual(device_index)
    # SDL zeroes the axes before it announces the removal.
    desk.pump(0.1, until=lambda: desk.sent and desk.sent[-1] == [GamepadRemoved(0)])
    assert desk.sent[-1] == [GamepadRemoved(0)]
    assert desk.capture.gamepads == {}


def test_attach_to_the_sdl_presenter(xvfb, monkeypatch):
    """Plugged into the real SDL presenter: its letterbox, its events, its fullscreen."""
    from rootstream.present import open_presenter

    monkeypatch.setenv("DISPLAY", xvfb.display)
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    sent: list[list] = []
    with open_presenter("sdl", width=1280, height=720, renderer="software",
                        window_size=(640, 360)) as presenter:
        capture = SdlInputCapture.attach(presenter, sent.append, gamepads=False)
        window = str(presenter.x11_window)

        def poll_until(predicate, timeout=5.0):
            deadline = time.monotonic() + timeout
            while not predicate() and time.monotonic() < deadline:
                presenter.poll_events()
                time.sleep(0.005)

        poll_until(lambda: False, timeout=0.2)  # let the window map before focusing it
        subprocess.run(["xdotool", "windowfocus", "--sync", window], env=xvfb.env(), check=True)
        subprocess.run(["xdotool", "mousemove", "--window", window, "100", "50"],
                       env=xvfb.env(), check=True)
        poll_until(lambda: [AbsoluteMotion(201, 101, 1280, 720)] in sent)
        assert [AbsoluteMotion(201, 101, 1280, 720)] in sent

        subprocess.run(["xdotool", "key", "ctrl+alt+shift+f"], env=xvfb.env(), check=True)
        poll_until(lambda: presenter.window_size() == (1280, 720))
        assert presenter.window_size() == (1280, 720)
        capture.close()


def test_close_releases_and_removes_everything_then_ignores_events(desk):
    device_index = attach_virtual_pad()
    try:
        desk.xdotool("keydown", "shift")
        desk.take(2)
        assert desk.capture.gamepads == {0: GamepadState(0)}
        desk.capture.close()
        assert desk.take(3) == [[KeyEvent(KEY_LEFTSHIFT, False)], [HeldSnapshot()],
                                [GamepadRemoved(0)]]
        desk.xdotool("keyup", "shift")
        desk.xdotool("key", "a")
        assert desk.take(0, settle=0.2) == []
        desk.capture.close()
        assert desk.sent == []
    finally:
        sdl2.SDL_JoystickDetachVirtual(device_index)
