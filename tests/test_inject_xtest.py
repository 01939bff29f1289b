"""The xtest injector on a real Xvfb, watched by a real X client.

XRecorder is a tiny Xlib program (cffi, ABI mode): a window covering the
screen, with keyboard focus, that records the KeyPress/KeyRelease,
ButtonPress/ButtonRelease and MotionNotify events the server delivers to it.
What it sees is what any application on the host would see.
"""

from __future__ import annotations

import select
import shutil
import subprocess
import time

import cffi
import pytest

from rootstream.errors import InputError
from rootstream.input import InputSession, open_injector, probe_injectors
from rootstream.input.inject_xtest import _FALLBACK_KEYSYMS, XTestInjector
from rootstream.protocol.input import (
    BTN_LEFT,
    BTN_MIDDLE,
    BTN_RIGHT,
    BTN_SIDE,
    AbsoluteMotion,
    ButtonEvent,
    GamepadAdded,
    GamepadState,
    HeldSnapshot,
    KeyEvent,
    RelativeMotion,
    WheelEvent,
    encode_input,
)

KEY_A, KEY_LEFTSHIFT, KEY_ENTER, KEY_MICMUTE = 30, 42, 28, 248

_ffi = cffi.FFI()
_ffi.cdef("""
typedef struct _XDisplay Display;
typedef unsigned long Window;
typedef unsigned long KeySym;
typedef struct {
    int type; unsigned long serial; int send_event; Display *display;
    Window window; Window root; Window subwindow; unsigned long time;
    int x, y, x_root, y_root; unsigned int state; unsigned int keycode; int same_screen;
} XKeyEvent;
typedef struct {
    int type; unsigned long serial; int send_event; Display *display;
    Window window; Window root; Window subwindow; unsigned long time;
    int x, y, x_root, y_root; unsigned int state; unsigned int button; int same_screen;
} XButtonEvent;
typedef struct {
    int type; unsigned long serial; int send_event; Display *display;
    Window window; Window root; Window subwindow; unsigned long time;
    int x, y, x_root, y_root; unsigned int state; char is_hint; int same_screen;
} XMotionEvent;
typedef union { int type; XKeyEvent xkey; XButtonEvent xbutton; XMotionEvent xmotion;
                long pad[24]; } XEvent;
Display *XOpenDisplay(const char *name);
int XCloseDisplay(Display *display);
Window XDefaultRootWindow(Display *display);
Window XCreateSimpleWindow(Display *display, Window parent, int x, int y,
                           unsigned int width, unsigned int height, unsigned int border_width,
                           unsigned long border, unsigned long background);
int XSelectInput(Display *display, Window w, long mask);
int XMapRaised(Display *display, Window w);
int XSetInputFocus(Display *display, Window focus, int revert_to, unsigned long time);
int XSync(Display *display, int discard);
int XPending(Display *display);
int XNextEvent(Display *display, XEvent *event);
int XConnectionNumber(Display *display);
int XLookupString(XKeyEvent *event, char *buffer, int size, KeySym *keysym, void *status);
""")

_KEY_PRESS, _KEY_RELEASE, _BUTTON_PRESS, _BUTTON_RELEASE, _MOTION, _MAP_NOTIFY = 2, 3, 4, 5, 6, 19
_MASK = 1 | 2 | 4 | 8 | (1 << 6) | (1 << 17)  # keys, buttons, pointer motion, structure


class XRecorder:
    """A focused full-screen window that records the input events it receives."""

    def __init__(self, display: str, width: int, height: int):
        self.x11 = _ffi.dlopen("libX11.so.6")
        self.dpy = self.x11.XOpenDisplay(display.encode())
        assert self.dpy != _ffi.NULL
        root = self.x11.XDefaultRootWindow(self.dpy)
        self.window = self.x11.XCreateSimpleWindow(self.dpy, root, 0, 0, width, height, 0, 0, 0)
        self.x11.XSelectInput(self.dpy, self.window, _MASK)
        self.x11.XMapRaised(self.dpy, self.window)
        self._event = _ffi.new("XEvent *")
        self._wait_for(lambda e: e.type == _MAP_NOTIFY)
        # Focus only once mapped: focusing an unmapped window is a BadMatch.
        self.x11.XSetInputFocus(self.dpy, self.window, 2, 0)
        self.x11.XSync(self.dpy, False)
        self.events: list[tuple] = []

    def _next(self, timeout: float):
        if not self.x11.XPending(self.dpy):
            select.select([self.x11.XConnectionNumber(self.dpy)], [], [], timeout)
            if not self.x11.XPending(self.dpy):
                return None
        self.x11.XNextEvent(self.dpy, self._event)
        return self._event

    def _wait_for(self, predicate, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            event = self._next(0.05)
            if event is not None and predicate(event):
                return
        raise AssertionError("X event did not arrive")

    def _record(self, e) -> None:
        if e.type in (_KEY_PRESS, _KEY_RELEASE):
            buf = _ffi.new("char[8]")
            n = self.x11.XLookupString(_ffi.addressof(e, "xkey"), buf, 8, _ffi.NULL, _ffi.NULL)
            text = _ffi.buffer(buf, n)[:].decode("latin-1")
            self.events.append(("key", e.type == _KEY_PRESS, e.xkey.keycode, text))
        elif e.type in (_BUTTON_PRESS, _BUTTON_RELEASE):
            self.events.append(("button", e.type == _BUTTON_PRESS, e.xbutton.button))
        elif e.type == _MOTION:
            self.events.append(("motion", e.xmotion.x, e.xmotion.y))

    def collect(self, count: int, timeout: float = 5.0) -> list[tuple]:
        """Wait until ``count`` more input events arrived; return and forget them."""
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            event = self._next(0.05)
            if event is not None:
                self._record(event)
        # Anything extra that is already queued is part of the answer too.
        while (event := self._next(0.1)) is not None:
            self._record(event)
        got, self.events = self.events, []
        return got

    def close(self) -> None:
        self.x11.XCloseDisplay(self.dpy)


@pytest.fixture
def desk(xvfb):
    recorder = XRecorder(xvfb.display, xvfb.width, xvfb.height)
    injector = XTestInjector(display=xvfb.display)
    # Park the pointer inside the window so pointer events go to it.
    injector.inject(AbsoluteMotion(10, 10, xvfb.width, xvfb.height))
    recorder.collect(1)
    try:
        yield injector, recorder
    finally:
        injector.close()
        recorder.close()


def keys_only(events):
    return [e for e in events if e[0] == "key"]


def test_xvfb_uses_evdev_keycodes(desk):
    injector, _ = desk
    assert injector.keymap == "evdev"
    assert injector.keycode_for(KEY_A) == KEY_A + 8
    assert injector.keycode_for(KEY_MICMUTE) is None  # X keycodes stop at 255


def test_typing_with_shift_gives_capitals(desk):
    injector, recorder = desk
    injector.inject_many([KeyEvent(KEY_A, True), KeyEvent(KEY_A, False),
                          KeyEvent(KEY_LEFTSHIFT, True), KeyEvent(KEY_A, True),
                          KeyEvent(KEY_A, False), KeyEvent(KEY_LEFTSHIFT, False),
                          KeyEvent(KEY_ENTER, True), KeyEvent(KEY_ENTER, False)])
    assert keys_only(recorder.collect(8)) == [
        ("key", True, 38, "a"), ("key", False, 38, "a"),
        ("key", True, 50, ""), ("key", True, 38, "A"), ("key", False, 38, "A"),
        ("key", False, 50, ""),
        ("key", True, 36, "\r"), ("key", False, 36, "\r"),
    ]
    assert injector.held_keys == set()


@pytest.mark.skipif(shutil.which("setxkbmap") is None, reason="apt install x11-xkb-utils")
def test_a_french_layout_keeps_positions(desk, xvfb):
    """The host's layout picks the character: the key at US "Q" types "a" on AZERTY."""
    injector, recorder = desk
    subprocess.run(["setxkbmap", "-display", xvfb.display, "fr"], check=True, timeout=10)
    with XTestInjector(display=xvfb.display) as french:
        assert french.keymap == "evdev"
        french.inject_many([KeyEvent(16, True), KeyEvent(16, False)])  # KEY_Q
        assert keys_only(recorder.collect(2)) == [("key", True, 24, "a"),
                                                  ("key", False, 24, "a")]


def test_keysym_keymap_types_the_same_keys_on_xvfb(xvfb):
    with XTestInjector(display=xvfb.display, keymap="evdev") as by_code, \
            XTestInjector(display=xvfb.display, keymap="keysym") as by_keysym:
        for code in _FALLBACK_KEYSYMS:
            assert by_keysym.keycode_for(code) == by_code.keycode_for(code), code


def test_clicks_and_side_button(desk):
    injector, recorder = desk
    injector.inject_many([ButtonEvent(BTN_LEFT, True), ButtonEvent(BTN_LEFT, False),
                          ButtonEvent(BTN_RIGHT, True), ButtonEvent(BTN_RIGHT, False),
                          ButtonEvent(BTN_MIDDLE, True), ButtonEvent(BTN_MIDDLE, False),
                          ButtonEvent(BTN_SIDE, True), ButtonEvent(BTN_SIDE, False)])
    assert recorder.collect(8) == [("button", True, 1), ("button", False, 1),
                                   ("button", True, 3), ("button", False, 3),
                                   ("button", True, 2), ("button", False, 2),
                                   ("button", True, 8), ("button", False, 8)]


def test_button_the_pointer_lacks_is_counted_not_sent(desk):
    injector, recorder = desk
    injector.inject(ButtonEvent(0x117, True))  # BTN_TASK -> X button 12; Xvfb has 10
    assert injector.counters["button_unsupported"] == 1
    assert injector.held_buttons == set()
    assert recorder.collect(0, timeout=0.2) == []


def test_wheel_clicks_whole_detents_and_carries_the_rest(desk):
    injector, recorder = desk
    injector.inject(WheelEvent(240, 0))  # two notches up
    injector.inject(WheelEvent(-60, 0))  # half a notch down: nothing yet
    injector.inject(WheelEvent(-60, 0))  # the other half: one click down
    injector.inject(WheelEvent(0, 120))  # one notch right
    injector.inject(WheelEvent(0, -150))  # one notch left, 30 units carried
    clicks = [e[2] for e in recorder.collect(10) if e[0] == "button" and e[1]]
    assert clicks == [4, 4, 5, 7, 6]


def test_absolute_motion_is_scaled_to_the_screen(desk, xvfb):
    injector, recorder = desk
    injector.inject(AbsoluteMotion(640, 360, 1280, 720))  # same size: exact
    injector.inject(AbsoluteMotion(320, 180, 640, 360))  # half-size stream: x2
    injector.inject(AbsoluteMotion(2559, 1439, 2560, 1440))  # double-size stream: last pixel
    assert recorder.collect(3) == [("motion", 640, 360), ("motion", 641, 361),
                                   ("motion", 1279, 719)]


def test_relative_motion_moves_from_where_the_pointer_is(desk):
    injector, recorder = desk
    injector.inject(AbsoluteMotion(100, 100, 1280, 720))
    injector.inject(RelativeMotion(10, -5))
    assert recorder.collect(2) == [("motion", 100, 100), ("motion", 110, 95)]


def test_gamepads_are_counted_as_unsupported_and_said_once(desk, caplog):
    injector, recorder = desk
    injector.inject_many([GamepadAdded(0), GamepadState(0, buttons=1)])
    assert injector.counters["gamepad_unsupported"] == 2
    assert injector.gamepads == {}
    assert [r.message for r in caplog.records].count(
        "the xtest injector cannot create gamepads; the client's controller input is dropped "
        "(use uinput on the host for gamepads)") == 1


def test_key_held_across_a_lost_release_is_released_by_the_next_snapshot(desk):
    injector, recorder = desk
    session = InputSession(injector)
    session.apply_payload(encode_input([KeyEvent(KEY_A, True), HeldSnapshot((KEY_A,))]), 1)
    # Datagram 2 carried the release and was lost; datagram 3 is a periodic snapshot.
    session.apply_payload(encode_input([HeldSnapshot(())]), 3)
    assert keys_only(recorder.collect(2)) == [("key", True, 38, "a"), ("key", False, 38, "a")]
    # Datagram 2 arriving late must not replay anything.
    assert not session.apply_payload(encode_input([KeyEvent(KEY_A, False)]), 2)
    assert session.counters["stale_dropped"] == 1
    assert recorder.collect(0, timeout=0.2) == []


def test_client_gone_releases_every_key_and_button(desk):
    injector, recorder = desk
    session = InputSession(injector)
    session.apply([KeyEvent(KEY_LEFTSHIFT, True), KeyEvent(KEY_A, True),
                   ButtonEvent(BTN_LEFT, True)], 7)
    assert len(recorder.collect(3)) == 3
    session.on_client_gone()
    released = recorder.collect(3)
    assert sorted(released) == sorted([("key", False, 50, ""), ("key", False, 38, "A"),
                                       ("button", False, 1)])
    assert injector.held_keys == injector.held_buttons == set()


def test_close_releases_what_is_held(xvfb):
    recorder = XRecorder(xvfb.display, xvfb.width, xvfb.height)
    try:
        injector = open_injector("xtest", display=xvfb.display)
        injector.inject(KeyEvent(KEY_A, True))
        injector.close()
        injector.close()
        assert keys_only(recorder.collect(2)) == [("key", True, 38, "a"), ("key", False, 38, "a")]
    finally:
        recorder.close()


def test_auto_falls_back_to_xtest_without_uinput(xvfb):
    injector = open_injector("auto", uinput={"device_path": "/nonexistent/uinput"},
                             xtest={"display": xvfb.display})
    try:
        assert injector.name == "xtest"
        assert len(injector.fallbacks) == 1
        assert injector.fallbacks[0].startswith("uinput: cannot open /nonexistent/uinput")
    finally:
        injector.close()


def test_auto_refuses_options_not_given_per_backend():
    with pytest.raises(InputError, match="auto takes options per backend"):
        open_injector("auto", display=":0")


def test_auto_lists_every_backend_that_failed():
    with pytest.raises(InputError) as info:
        open_injector("auto", uinput={"device_path": "/nonexistent/uinput"},
                      xtest={"display": ":4999"})
    assert [line.split(":")[0] for line in info.value.details] == ["uinput", "xtest"]
    assert "cannot open X display :4999" in info.value.details[1]


def test_probe_reports_each_backend(xvfb):
    results = probe_injectors(uinput={"device_path": "/nonexistent/uinput"},
                              xtest={"display": xvfb.display})
    assert results[0][:2] == ("uinput", False)
    assert results[1] == ("xtest", True, "ok")


def test_unknown_injector_names_the_known_ones():
    with pytest.raises(InputError, match="unknown input injector 'joy'") as info:
        open_injector("joy")
    assert "uinput" in info.value.hint and "xtest" in info.value.hint
