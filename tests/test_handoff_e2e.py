"""Control between viewers, end to end: `host --viewers 2 --handoff ask|free|locked`.

Processes: ``rootstream host --source x11 --input xtest`` on Xvfb A (XRecorder,
an X client there, records what its desktop receives) and two
``rootstream connect --present sdl`` on Xvfbs B and C, each session
encrypted with its own keys, on loopback.  xdotool plays each user in their
own window.  The first client holds control: its typing arrives, the
second's does not (its client sends none).  Each mode then moves control
(ask: requested with Ctrl+Alt+Shift+C and granted with +A; free: taken with
+C; locked: refused, then the holder leaves; any mode: the holder gives it
back with Ctrl+Alt+Shift+G, in the SDL and the x11 presenter) and the typing
moves with it, while a key the previous holder held down is released on the
host.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from session_helpers import HostProcess, LoggedProcess, rootstream_command
from test_inject_xtest import XRecorder
from test_input_session_e2e import KEYCODE_X, KEYCODE_Y, SIZE, Player, _settle, _until, keys

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("xdotool") is None, reason="apt install xdotool"),
    pytest.mark.skipif(shutil.which("xset") is None, reason="apt install x11-xserver-utils"),
]


class Viewer(LoggedProcess):
    """One `rootstream connect` in an SDL window on its own display, its log in a file."""

    def __init__(self, port: int, display, log_path, present: str = "sdl"):
        super().__init__(rootstream_command("connect", f"127.0.0.1:{port}", "--present", present,
                                            "--seconds", "90", "--no-audio"),
                         log_path, display.env(SDL_VIDEODRIVER="x11"))
        self.display = display
        self.player: Player | None = None

    def focus(self) -> None:
        self.player = Player(self.display)
        time.sleep(0.3)  # mapped before it is focused (a BadMatch otherwise)
        self.player("windowfocus", "--sync", self.player.window)


@pytest.fixture
def room(xvfb_factory, tmp_path, udp_port):
    """start(mode) -> (first, second, recorder, host), first holding control (in the
    ``present`` presenter)."""
    made = []

    def start(mode: str, present: str = "sdl"):
        host_x = xvfb_factory(*SIZE)
        subprocess.run(["xset", "-display", host_x.display, "r", "off"], check=True, timeout=10)
        recorder = XRecorder(host_x.display, *SIZE)
        host = HostProcess(udp_port, "--source", "x11", "--input", "xtest", "--fps", "20",
                           "--bitrate", "1", "--viewers", "2", "--handoff", mode,
                           "--audio", "none", env=host_x.env(), log_dir=tmp_path)
        made.extend([recorder, host])
        host.wait_for("listening on")
        first = Viewer(udp_port, xvfb_factory(*SIZE), tmp_path / "first.log", present)
        made.append(first)
        first.wait_for("control: you")
        second = Viewer(udp_port, xvfb_factory(*SIZE), tmp_path / "second.log")
        made.append(second)
        second.wait_for("control: this machine; 1 watching")
        first.focus()
        second.focus()
        return first, second, recorder, host

    yield start
    for thing in reversed(made):
        (thing.close if isinstance(thing, XRecorder) else thing.stop)()
    for name in ("first.log", "second.log"):
        path = tmp_path / name
        assert not path.exists() or "Traceback" not in path.read_text()


def _types(player: Player, recorder: XRecorder, key: str, code: int) -> bool:
    """Whether a tap of ``key`` in this viewer's window reaches the host's desktop."""
    recorder.collect(0, timeout=0.05)
    player("key", key)
    seen = _until(recorder, lambda s: (False, code, key) in keys(s), timeout=2.0)
    return (True, code, key) in keys(seen)


def _hold_then_lose_control(holder: Player, recorder: XRecorder, move) -> list:
    """The holder keeps x down while ``move()`` hands control away; what the host saw."""
    holder("keydown", "x")
    pressed = _until(recorder, lambda s: (True, KEYCODE_X, "x") in keys(s))
    assert (True, KEYCODE_X, "x") in keys(pressed)
    move()
    return _until(recorder, lambda s: (False, KEYCODE_X, "x") in keys(s), timeout=5)


def test_the_holders_typing_arrives_and_a_watchers_does_not(room):
    first, second, recorder, host = room("ask")
    assert _types(first.player, recorder, "x", KEYCODE_X)
    assert not _types(second.player, recorder, "y", KEYCODE_Y)
    assert _settle(recorder, 0.3) == []
    # The watcher's client kept its input to itself: the host dropped none of it.
    host.wait_for("input_events=")
    assert "dropped_not_in_control" not in host.log()


def _control_moves(first: Viewer, second: Viewer, recorder: XRecorder, host, move,
                   reason: str) -> None:
    """``move()`` hands control from first to second while first holds x down: x is
    released on the host, and the typing moves with control."""
    released = _hold_then_lose_control(first.player, recorder, move)
    assert (False, KEYCODE_X, "x") in keys(released), "the old holder's key stayed held"
    host.wait_for(f"({reason})")
    second.wait_for("control: you")
    assert _types(second.player, recorder, "y", KEYCODE_Y)
    first.player("keyup", "x")
    assert not _types(first.player, recorder, "x", KEYCODE_X)


def test_ask_mode_the_holder_grants_and_the_typing_moves(room):
    first, second, recorder, host = room("ask")

    def ask_and_grant():
        second.player("key", "ctrl+alt+shift+c")
        first.wait_for("asks for control")
        second.wait_for("waiting for an answer")
        first.player("key", "ctrl+alt+shift+a")

    _control_moves(first, second, recorder, host, ask_and_grant, "granted")
    second.wait_for("you have control")


def test_ask_mode_a_denied_request_leaves_control_where_it_was(room):
    first, second, recorder, host = room("ask")
    second.player("key", "ctrl+alt+shift+c")
    first.wait_for("asks for control")
    first.player("key", "ctrl+alt+shift+d")
    second.wait_for("kept control")
    assert _types(first.player, recorder, "x", KEYCODE_X)
    assert not _types(second.player, recorder, "y", KEYCODE_Y)


def test_free_mode_the_asker_takes_control_at_once(room):
    first, second, recorder, host = room("free")
    _control_moves(first, second, recorder, host,
                   lambda: second.player("key", "ctrl+alt+shift+c"), "free")


def test_locked_mode_refuses_and_control_moves_only_when_the_holder_leaves(room):
    first, second, recorder, host = room("locked")
    second.player("key", "ctrl+alt+shift+c")
    second.wait_for("control is locked")
    assert _types(first.player, recorder, "x", KEYCODE_X)
    assert not _types(second.player, recorder, "y", KEYCODE_Y)
    # The holder leaving is no hand-off by request: control goes to the viewer left.
    released = _hold_then_lose_control(first.player, recorder, first.stop)
    assert (False, KEYCODE_X, "x") in keys(released)
    host.wait_for("(left)")
    second.wait_for("control: you")
    assert _types(second.player, recorder, "y", KEYCODE_Y)


@pytest.mark.parametrize("present", ["sdl", "x11"])
def test_the_holder_gives_control_back_with_its_hotkey(room, present):
    # Locked: giving back is no request, so it moves control even there.
    first, second, recorder, host = room("locked", present)
    first.wait_for("Ctrl+Alt+Shift+G gives it back")
    _control_moves(first, second, recorder, host,
                   lambda: first.player("key", "ctrl+alt+shift+g"), "gave back")
    assert "control: this machine -> this machine (gave back)" in host.log()
