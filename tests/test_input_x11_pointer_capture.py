"""Pointer capture in the x11 presenter's window (Ctrl+Alt+Shift+Z), on a real Xvfb.

xdotool plays the user through XTEST: the hotkey, relative moves (XTEST's
relative motion, the raw deltas XInput2 reports while the grab holds) and
absolute moves.  What would go to the host is what ClientInput sends.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from abi_check import layouts
from test_input_client_service import black_frame, session

from rootstream.input.client_service import ClientInput
from rootstream.input.x11_reader import X11InputReader
from rootstream.present import open_presenter
from rootstream.protocol.input import (
    AbsoluteMotion,
    ButtonEvent,
    HeldSnapshot,
    KeyEvent,
    RelativeMotion,
    decode_input,
)

pytestmark = pytest.mark.skipif(shutil.which("xdotool") is None,
                                reason="xdotool missing (apt-get install xdotool)")
SIZE = (640, 360)
HOTKEY = "ctrl+alt+shift+z"


class Window:
    """The x11 presenter with ClientInput attached; ``pump`` plays the client loop."""

    def __init__(self, display: str):
        self.display = display
        self.sent: list[bytes] = []
        self.logged: list[str] = []
        self.presenter = open_presenter("x11", width=SIZE[0], height=SIZE[1], display=display)
        self.presenter.present(black_frame(*SIZE))
        self.service = ClientInput(log=self.logged.append, capture_options={"gamepads": False})
        self.service.session_started(session(), lambda ptype, payload: self.sent.append(payload))
        self.service.attach_presenter(self.presenter)
        self.xdotool("windowfocus", "--sync", str(self.presenter.x11_window))

    def xdotool(self, *args: str) -> None:
        subprocess.run(["xdotool", *args], env={"DISPLAY": self.display}, check=True,
                       timeout=10)

    def events(self) -> list:
        return [e for p in self.sent for e in decode_input(p) if not isinstance(e, HeldSnapshot)]

    def until(self, predicate, timeout: float = 5.0) -> list:
        """Pump the presenter's events (hotkeys act there) until ``predicate(events)``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.presenter.poll_events()
            if predicate(self.events()):
                break
            time.sleep(0.01)
        return self.events()

    def captured(self, want: bool) -> bool:
        self.until(lambda _: self.service.capture.pointer_captured == want)
        return self.service.capture.pointer_captured == want

    def close(self) -> None:
        self.service.close()
        self.presenter.close()


@pytest.fixture
def window(xvfb_factory):
    made = Window(xvfb_factory(*SIZE).display)
    try:
        yield made
    finally:
        made.close()


def _relative_sum(events) -> tuple[int, int]:
    moves = [e for e in events if isinstance(e, RelativeMotion)]
    return sum(m.dx for m in moves), sum(m.dy for m in moves)


def test_the_hotkey_captures_the_pointer_and_relative_motion_reaches_the_host(window):
    window.xdotool("mousemove", "--window", str(window.presenter.x11_window), "100", "100")
    assert window.until(lambda seen: AbsoluteMotion(100, 100, *SIZE) in seen)
    window.xdotool("key", HOTKEY)
    assert window.captured(True)
    assert window.service.reader.grab.uses_raw  # Xvfb offers XInput2
    window.sent.clear()
    # Far past the window's edge: the grab confines the pointer, raw deltas do not stop.
    for _ in range(4):
        window.xdotool("mousemove_relative", "--", "300", "-200")
    seen = window.until(lambda seen: _relative_sum(seen) == (1200, -800))
    assert _relative_sum(seen) == (1200, -800), seen
    assert not [e for e in seen if isinstance(e, AbsoluteMotion)]
    assert not [e for e in seen if isinstance(e, KeyEvent)]  # the hotkey is consumed
    window.xdotool("click", "1")
    clicks = window.until(lambda seen: len([e for e in seen if isinstance(e, ButtonEvent)]) >= 2)
    assert [e for e in clicks if isinstance(e, ButtonEvent)] == [ButtonEvent(0x110, True),
                                                                  ButtonEvent(0x110, False)]

    window.xdotool("key", HOTKEY)  # released: absolute again
    assert window.captured(False)
    window.sent.clear()
    window.xdotool("mousemove", "--window", str(window.presenter.x11_window), "50", "60")
    seen = window.until(lambda seen: AbsoluteMotion(50, 60, *SIZE) in seen)
    assert AbsoluteMotion(50, 60, *SIZE) in seen
    assert _relative_sum(seen) == (0, 0)


def test_focus_loss_releases_the_grab(window):
    window.xdotool("key", HOTKEY)
    assert window.captured(True)
    # Focus to the root window, as a window manager's Alt+Tab would move it away.
    window.xdotool("windowfocus", "--sync", str(_root(window.display)))
    assert window.captured(False)
    # The pointer is free again: another program may grab it.
    assert _grab_status(window.display) == 0


def test_close_releases_the_grab(xvfb_factory):
    made = Window(xvfb_factory(*SIZE).display)
    made.xdotool("key", HOTKEY)
    assert made.captured(True)
    assert _grab_status(made.display) != 0  # held: nobody else gets the pointer
    made.close()
    assert _grab_status(made.display) == 0


def test_without_raw_motion_warp_to_centre_gives_the_deltas(xvfb_factory):
    """The path for servers without XInput2: each motion's distance from the centre."""
    display = xvfb_factory(*SIZE).display
    batches: list = []
    changes: list = []
    with open_presenter("x11", width=SIZE[0], height=SIZE[1], display=display) as presenter:
        presenter.present(black_frame(*SIZE))
        reader = X11InputReader(presenter.x11_window, lambda batch, size: batches.extend(batch),
                                display=display, buttons=True, raw_motion=False,
                                on_capture=lambda captured, why: changes.append((captured, why)))
        reader.start()
        try:
            reader.toggle_pointer_capture()
            deadline = time.monotonic() + 5
            while not changes and time.monotonic() < deadline:
                time.sleep(0.01)
            assert changes == [(True, "")]
            assert not reader.grab.uses_raw
            for _ in range(3):
                subprocess.run(["xdotool", "mousemove_relative", "--", "25", "-15"],
                               env={"DISPLAY": display}, check=True, timeout=10)
                time.sleep(0.05)  # each move lands after the warp back to the centre
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                moved = [b for b in batches if b.kind == "relative"]
                if (sum(b.x for b in moved), sum(b.y for b in moved)) == (75, -45):
                    break
                time.sleep(0.01)
            moved = [b for b in batches if b.kind == "relative"]
            assert (sum(b.x for b in moved), sum(b.y for b in moved)) == (75, -45), batches
        finally:
            reader.stop()
    assert changes[-1] == (False, "")


def _root(display: str) -> int:
    out = subprocess.run(["xdotool", "search", "--maxdepth", "0", "--name", ""],
                         env={"DISPLAY": display}, capture_output=True, text=True, timeout=10)
    return int(out.stdout.split()[0])


def _grab_status(display: str) -> int:
    """XGrabPointer's answer for a fresh client on the root window (0: the pointer is free)."""
    from rootstream._native import xlib
    from rootstream.input import x11_pointer_grab as grab

    x11 = xlib.load().x11
    connection = x11.XOpenDisplay(display.encode())
    try:
        raw = grab._void(connection)
        root = x11.XRootWindow(connection, x11.XDefaultScreen(connection))
        status = grab._open()[0].XGrabPointer(raw, root, False, 0, 1, 1, 0, 0, 0)
        grab._open()[0].XUngrabPointer(raw, 0)
        x11.XSync(connection, False)
        return status
    finally:
        x11.XCloseDisplay(connection)


def test_the_grabs_declarations_match_the_headers(tmp_path):
    from rootstream.input.x11_pointer_grab import _ffi

    headers = ["X11/Xlib.h", "X11/extensions/XInput2.h"]
    if shutil.which("gcc") is None or not all(Path("/usr/include", h).exists()
                                              for h in headers):
        pytest.skip("gcc or X headers missing: apt-get install gcc libx11-dev libxi-dev")
    ours, theirs = layouts(_ffi, ["XColor", "XIValuatorState", "XIRawEvent", "XIAnyClassInfo",
                                  "XIValuatorClassInfo", "XIDeviceInfo", "XIEventMask"],
                           headers, tmp_path)
    assert ours == theirs


# -- through a real session: rootstream host on Xvfb A, rootstream connect on Xvfb B ----------

@pytest.fixture
def x11_session(xvfb_factory, tmp_path, udp_port):
    """``rootstream host --input xtest`` on A, ``connect --present x11`` on B, and an
    XRecorder on A that sees what the host's desktop receives."""
    from session_helpers import HostProcess, rootstream_command
    from test_inject_xtest import XRecorder

    host_x, client_x = xvfb_factory(*SIZE), xvfb_factory(*SIZE)
    recorder = XRecorder(host_x.display, *SIZE)
    host = HostProcess(udp_port, "--source", "x11", "--input", "xtest", "--fps", "30",
                       "--bitrate", "2", env=host_x.env(), log_dir=tmp_path)
    client = None
    log = open(tmp_path / "client.log", "w")  # noqa: SIM115 - closed below
    try:
        host.wait_for("listening on")
        client = subprocess.Popen(
            rootstream_command("connect", f"127.0.0.1:{udp_port}", "--present", "x11",
                               "--seconds", "60"),
            env=client_x.env(PYTHONUNBUFFERED="1"), stdout=log, stderr=subprocess.STDOUT)
        host.wait_for("input injected with xtest")
        window = _visible_window(client_x.display)
        time.sleep(0.3)  # mapped before it is focused (a BadMatch otherwise)
        subprocess.run(["xdotool", "windowfocus", "--sync", window],
                       env={"DISPLAY": client_x.display}, check=True, timeout=10)
        yield client_x.display, window, recorder, tmp_path / "client.log"
    finally:
        if client is not None and client.poll() is None:
            client.terminate()
            client.wait(10)
        host.stop()
        recorder.close()
        log.close()
        assert "Traceback" not in (tmp_path / "client.log").read_text()


def _visible_window(display: str) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "rootstream"],
                               env={"DISPLAY": display}, capture_output=True, text=True,
                               timeout=10).stdout.split()
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError("the client's window never appeared")


def _host_motion(recorder, predicate, timeout: float = 8.0) -> list[tuple]:
    seen: list[tuple] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate(seen):
        seen += [e for e in recorder.collect(0, timeout=0.05) if e[0] == "motion"]
    return seen


def test_relative_motion_reaches_the_host_through_a_real_session(x11_session):
    display, window, recorder, client_log = x11_session

    def play(*args: str) -> None:
        subprocess.run(["xdotool", *args], env={"DISPLAY": display}, check=True, timeout=10)

    play("mousemove", "--window", window, "100", "100")  # free: absolute, 1:1
    assert ("motion", 100, 100) in _host_motion(recorder, lambda s: ("motion", 100, 100) in s)
    play("key", HOTKEY)
    deadline = time.monotonic() + 10
    while "pointer captured" not in client_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "pointer captured" in client_log.read_text()
    for _ in range(3):
        play("mousemove_relative", "--", "30", "20")
    # XTEST on the host moves its pointer by the deltas: 100 + 3 * 30, 100 + 3 * 20.
    moved = _host_motion(recorder, lambda s: s[-1:] == [("motion", 190, 160)])
    assert moved[-1:] == [("motion", 190, 160)], moved
    play("key", HOTKEY)  # released: the next move is absolute again
    deadline = time.monotonic() + 10
    while "pointer released" not in client_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    play("mousemove", "--window", window, "40", "30")
    assert ("motion", 40, 30) in _host_motion(recorder, lambda s: ("motion", 40, 30) in s)
