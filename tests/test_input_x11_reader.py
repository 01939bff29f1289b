"""The X11 input reader on a real Xvfb: keys only while focused, in order, none lost.

The "client's window" is an XRecorder (a focused window with its own X
connection selecting keys, as SDL's does); the reader selects on the same
window from a connection of its own, and XTestInjector plays the user.
The translator (what the reader saw -> InputEvents) is driven directly.
"""

from __future__ import annotations

import threading
import time

import pytest
from test_inject_xtest import XRecorder

from rootstream.input.inject_xtest import XTestInjector
from rootstream.input.window_input import WindowInputTranslator
from rootstream.input.x11_reader import WindowInput, X11InputReader
from rootstream.protocol.input import AbsoluteMotion, KeyEvent

KEY_A, KEY_S, KEY_Z, KEY_LEFTSHIFT, KEY_LEFTCTRL, KEY_LEFTALT = 30, 31, 44, 42, 29, 56
TYPED = [30, 48, 46, 32, 18, 33, 34, 35, 23, 36, 37, 38, 50, 49, 24, 25]  # a..p


class Batches:
    """What the reader handed over, from its thread."""

    def __init__(self) -> None:
        self.items: list[WindowInput] = []
        self.sizes: list[tuple[int, int]] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, batch, size) -> None:
        with self._lock:
            self.items += batch
            self.sizes.append(size)
            self.threads.add(threading.current_thread().name)

    def keys(self) -> list[tuple[int, bool]]:
        with self._lock:
            return [(i.code, i.pressed) for i in self.items if i.kind == "key"]

    def wait(self, predicate, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate(list(self.items)):
                    return True
            time.sleep(0.01)
        return False


@pytest.fixture
def session(xvfb):
    window = XRecorder(xvfb.display, 640, 480)
    injector = XTestInjector(display=xvfb.display)
    injector.inject(AbsoluteMotion(10, 10, xvfb.width, xvfb.height))  # over the window
    batches = Batches()
    reader = X11InputReader(window.window, batches, display=xvfb.display)
    reader.start()
    try:
        yield window, injector, batches, reader
    finally:
        reader.stop()
        injector.close()
        window.close()


def test_fast_typing_arrives_in_order_with_no_key_lost(session):
    _, injector, batches, reader = session
    sent = []
    for round_ in range(8):
        for code in TYPED:
            for down in (True, False):
                injector.inject(KeyEvent(code, down))
                sent.append((code, down))
        if round_ % 2:
            time.sleep(0.005)  # some together in one batch, some apart
    assert batches.wait(lambda items: sum(i.kind == "key" for i in items) >= len(sent))
    assert batches.keys() == sent
    assert reader.running and batches.threads == {"x11-input"}


def test_keys_are_read_only_while_the_window_has_focus(session, xvfb):
    _, injector, batches, _ = session
    other = XRecorder(xvfb.display, 640, 480)  # a new window takes the focus
    try:
        assert batches.wait(lambda items: any(i.kind == "focus" and not i.pressed
                                              for i in items))
        injector.inject(KeyEvent(KEY_A, True))
        injector.inject(KeyEvent(KEY_A, False))
        assert other.collect(2, timeout=2)  # the keys went to the focused window...
        time.sleep(0.2)
        assert batches.keys() == []  # ...and the reader saw none of them
    finally:
        other.close()  # the focus returns to the client's window (PointerRoot)
    injector.inject(KeyEvent(KEY_S, True))
    injector.inject(KeyEvent(KEY_S, False))
    assert batches.wait(lambda items: sum(i.kind == "key" for i in items) >= 2)
    assert batches.keys() == [(KEY_S, True), (KEY_S, False)]


def test_motion_arrives_in_window_pixels_and_the_window_size_with_it(session, xvfb):
    _, injector, batches, _ = session
    injector.inject(AbsoluteMotion(321, 123, xvfb.width, xvfb.height))
    assert batches.wait(lambda items: any(i.kind == "motion" and (i.x, i.y) == (321, 123)
                                          for i in items))
    assert batches.sizes[-1] == (640, 480)


def test_the_reader_refuses_a_window_that_does_not_exist(xvfb):
    from rootstream.errors import InputError

    with pytest.raises(InputError, match="client's window"):
        X11InputReader(0x7FFFFF, lambda *_: None, display=xvfb.display).start()


# -- the translator: no X needed ------------------------------------------------------------


def _translate(translator, items, held, captured=False):
    return translator.translate(items, held, pointer_captured=captured,
                                to_stream=lambda x, y: (x * 2, y * 2) if x < 100 else None,
                                stream_size=(200, 100))


def test_held_keys_are_shared_and_a_release_asks_for_a_snapshot():
    translator, held = WindowInputTranslator(), {KEY_LEFTSHIFT}  # held via the capture
    events, released = _translate(translator, [WindowInput("key", KEY_A, True),
                                               WindowInput("key", KEY_A, True)], held)
    assert events == [KeyEvent(KEY_A, True)] and not released  # the repeat is dropped
    assert held == {KEY_LEFTSHIFT, KEY_A}
    events, released = _translate(translator, [WindowInput("key", KEY_A, False)], held)
    assert events == [KeyEvent(KEY_A, False)] and released and held == {KEY_LEFTSHIFT}


def test_hotkeys_are_left_to_the_capture_press_and_release():
    translator, held = WindowInputTranslator(), set()
    state = 1 | 4 | 8  # Shift, Control, Mod1
    events, _ = _translate(translator, [WindowInput("key", KEY_Z, True, state=state),
                                        WindowInput("key", KEY_Z, False, state=state)], held)
    assert events == [] and held == set()
    events, _ = _translate(translator, [WindowInput("key", KEY_Z, True, state=1)], held)
    assert events == [KeyEvent(KEY_Z, True)]  # Shift+Z alone is a key like any other


def test_motion_maps_to_the_stream_unless_captured_and_focus_loss_releases():
    translator, held = WindowInputTranslator(), set()
    events, _ = _translate(translator, [WindowInput("motion", x=10, y=20),
                                        WindowInput("motion", x=500, y=20)], held)
    assert events == [AbsoluteMotion(20, 40, 200, 100)]  # the bar at x=500 sends nothing
    events, _ = _translate(translator, [WindowInput("motion", x=10, y=20)], held, True)
    assert events == []
    _translate(translator, [WindowInput("key", KEY_LEFTCTRL, True),
                            WindowInput("key", KEY_LEFTALT, True)], held)
    events, released = _translate(translator, [WindowInput("focus", pressed=False)], held)
    assert events == [KeyEvent(KEY_LEFTCTRL, False), KeyEvent(KEY_LEFTALT, False)]
    assert released and held == set()


def test_motion_and_keys_are_read_on_an_sdl_window(xvfb_factory, monkeypatch):
    # SDL 2.32 selects XInput2 motion on its window, which keeps core
    # MotionNotify from every other client: the reader must ask for XI2 too.
    xvfb = xvfb_factory(640, 480)  # the window covers the screen: (x, y) on both
    monkeypatch.setenv("DISPLAY", xvfb.display)
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    from rootstream.present.sdl import SdlPresenter

    presenter = SdlPresenter(width=640, height=480)
    batches = Batches()
    reader = X11InputReader(presenter.x11_window, batches, display=xvfb.display)
    injector = XTestInjector(display=xvfb.display)
    try:
        reader.start()
        presenter.poll_events()
        injector.inject(AbsoluteMotion(100, 50, xvfb.width, xvfb.height))
        injector.inject(KeyEvent(KEY_A, True))
        injector.inject(KeyEvent(KEY_A, False))
        assert batches.wait(lambda items: len(items) >= 3)
        assert [(i.x, i.y) for i in batches.items if i.kind == "motion"][:1] == [(100, 50)]
        assert batches.keys() == [(KEY_A, True), (KEY_A, False)]
    finally:
        injector.close()
        reader.stop()
        presenter.close()


def test_on_the_x11_presenters_window_clicks_and_the_wheel_are_read_too(xvfb_factory):
    # Nobody else selects ButtonPress there, so the reader may (X allows one client).
    from rootstream.present.x11 import X11Presenter
    from rootstream.protocol.input import ButtonEvent, WheelEvent

    xvfb = xvfb_factory(640, 480)
    presenter = X11Presenter(width=640, height=480, display=xvfb.display)
    batches = Batches()
    reader = X11InputReader(presenter.x11_window, batches, display=xvfb.display, buttons=True)
    injector = XTestInjector(display=xvfb.display)
    try:
        reader.start()
        injector.inject(AbsoluteMotion(40, 30, 640, 480))
        injector.inject(ButtonEvent(0x110, True))
        injector.inject(ButtonEvent(0x110, False))
        injector.inject(WheelEvent(120, 0))
        assert batches.wait(lambda items: sum(i.kind == "button" for i in items) >= 4)
        clicks = [(i.code, i.pressed, i.x, i.y) for i in batches.items if i.kind == "button"]
        assert clicks == [(1, True, 40, 30), (1, False, 40, 30), (4, True, 40, 30),
                          (4, False, 40, 30)]
        held_buttons: set[int] = set()
        events, released = WindowInputTranslator().translate(
            [i for i in batches.items if i.kind == "button"], set(), pointer_captured=False,
            to_stream=lambda x, y: (x, y), stream_size=(640, 480), held_buttons=held_buttons)
        assert events == [AbsoluteMotion(40, 30, 640, 480), ButtonEvent(0x110, True),
                          ButtonEvent(0x110, False), WheelEvent(120, 0)]
        assert released and held_buttons == set()
    finally:
        injector.close()
        reader.stop()
        presenter.close()


def test_a_batch_that_fails_to_send_does_not_stop_the_reader(xvfb):
    from rootstream.errors import NetworkError

    window = XRecorder(xvfb.display, 640, 480)
    injector = XTestInjector(display=xvfb.display)
    injector.inject(AbsoluteMotion(10, 10, xvfb.width, xvfb.height))
    batches = Batches()
    failing = [True]

    def on_batch(batch, size):
        if failing[0]:
            failing[0] = False
            raise NetworkError("cannot send to 127.0.0.1:1: Network is unreachable")
        batches(batch, size)

    reader = X11InputReader(window.window, on_batch, display=xvfb.display)
    reader.start()
    try:
        injector.inject(KeyEvent(KEY_A, True))
        injector.inject(KeyEvent(KEY_A, False))
        time.sleep(0.2)
        injector.inject(KeyEvent(KEY_S, True))
        assert batches.wait(lambda items: (KEY_S, True) in [(i.code, i.pressed) for i in items])
        assert reader.running and reader.failed_batches == 1
        assert "unreachable" in reader.error
    finally:
        injector.inject(KeyEvent(KEY_S, False))
        reader.stop()
        injector.close()
        window.close()
