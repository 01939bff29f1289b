"""The client's input service on a real SDL window (Xvfb + xdotool), and its stats overlay."""

from __future__ import annotations

import shutil
import subprocess
import time

import av
import numpy as np
import pytest

from rootstream.input.client_service import ClientInput, OverlayFigures
from rootstream.present import open_presenter
from rootstream.protocol import Capability, Config, PacketType
from rootstream.protocol.input import ButtonEvent, HeldSnapshot, KeyEvent, decode_input
from rootstream.session import SessionInfo

KEY_A = 30


def session(config_caps: int = Capability.INPUT) -> SessionInfo:
    """A session whose host announced ``config_caps`` (input: it injects)."""
    return SessionInfo(("127.0.0.1", 1), 7, "host",
                       Config(width=640, height=360, fps=30, capabilities=config_caps))


def black_frame(width: int, height: int) -> av.VideoFrame:
    planes = np.full((height * 3 // 2, width), 128, np.uint8)
    planes[:height] = 16
    return av.VideoFrame.from_ndarray(planes, format="yuv420p")


@pytest.fixture
def window(xvfb, monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb.display)
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    with open_presenter("sdl", width=640, height=360, renderer="software") as presenter:
        presenter.present(black_frame(640, 360))
        yield presenter


def user_of(window, xvfb):
    """(xdotool on the window's display, pump the window's events for a while)."""

    def xdotool(*args):
        subprocess.run(["xdotool", *args], env=xvfb.env(), check=True, timeout=10)

    def pump(seconds=0.3):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            window.poll_events()
            time.sleep(0.005)

    return xdotool, pump


def corner_brightness(presenter) -> int:
    return int(presenter.read_pixels()[:60, :300, :3].max())


def test_overlay_text_is_drawn_over_the_picture_then_hidden(window):
    assert window.overlay_problem() == ""
    assert corner_brightness(window) < 40
    window.set_overlay(["60.0 fps  10.00 Mbit/s", "decode 2.1 ms"])
    window.poll_events()  # a still picture: the overlay is drawn without a new frame
    assert corner_brightness(window) > 200
    assert int(window.read_pixels()[200:, 400:, :3].max()) < 40  # only the corner
    window.set_overlay(None)
    assert corner_brightness(window) < 40


def test_a_missing_font_is_a_reason_not_a_crash(xvfb, monkeypatch, tmp_path):
    monkeypatch.setenv("DISPLAY", xvfb.display)
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    monkeypatch.setenv("ROOTSTREAM_OVERLAY_FONT", str(tmp_path / "missing.ttf"))
    with open_presenter("sdl", width=640, height=360, renderer="software") as presenter:
        presenter.present(black_frame(640, 360))
        assert "fonts-dejavu-core" in presenter.overlay_problem()
        presenter.set_overlay(["still streaming"])
        presenter.present(black_frame(640, 360))
        assert corner_brightness(presenter) < 40


@pytest.mark.skipif(shutil.which("xdotool") is None, reason="apt install xdotool")
def test_keys_become_datagrams_and_the_stats_hotkey_shows_the_overlay(window, xvfb):
    sent: list[tuple[PacketType, bytes]] = []
    figures = {"frames_presented": 0, "received_bytes": 0, "bitrate_kbps": 8000,
               "latency_ms": {"decode": {"p50": 2.0, "p99": 4.0}}, "drops": {}}
    service = ClientInput(figures=lambda: figures, log=lambda line: None)
    service.session_started(session(), lambda ptype, payload: sent.append((ptype, payload)))
    service.attach_presenter(window)
    assert service.capturing

    xdotool, pump = user_of(window, xvfb)

    pump(0.2)
    xdotool("windowfocus", "--sync", str(window.x11_window))
    pump(0.1)
    sent.clear()
    xdotool("key", "a")
    pump()
    assert {ptype for ptype, _ in sent} == {PacketType.INPUT}
    # The X11 reader's thread sent them: one datagram per batch it read, so
    # the press and the release may travel together; a release carries the snapshot.
    assert service.reader is not None and service.reader.running
    events = [e for _, payload in sent for e in decode_input(payload)]
    assert events[:3] == [KeyEvent(KEY_A, True), KeyEvent(KEY_A, False), HeldSnapshot()]

    sent.clear()
    xdotool("key", "ctrl+alt+shift+s")
    pump()
    assert corner_brightness(window) > 200
    # The hotkey itself is not typed on the host (only modifier edges and snapshots).
    assert all(e.code != 31 for _, p in sent for e in decode_input(p) if isinstance(e, KeyEvent))
    figures["frames_presented"] = 30
    service.tick(time.monotonic_ns() + 10**9)  # the receive thread's refresh
    pump(0.1)
    assert corner_brightness(window) > 200
    xdotool("key", "ctrl+alt+shift+s")
    pump()
    assert corner_brightness(window) < 40

    service.close()
    assert not service.capturing
    sent.clear()
    xdotool("key", "a")
    pump()
    assert sent == []


@pytest.mark.skipif(shutil.which("xdotool") is None, reason="apt install xdotool")
def test_keys_go_out_once_each_side_of_a_pointer_capture(window, xvfb):
    # Captured, SDL grabs the keyboard and the X11 reader sees no key: SDL's
    # capture sends them then.  A key held across the switch is released once.
    sent: list[bytes] = []
    service = ClientInput(log=lambda line: None)
    service.session_started(session(), lambda ptype, payload: sent.append(payload))
    service.attach_presenter(window)

    xdotool, pump = user_of(window, xvfb)

    def keys():
        return [e for p in sent for e in decode_input(p) if isinstance(e, KeyEvent)
                and e.code in (KEY_A, 48)]

    def clicks():
        return [e for p in sent for e in decode_input(p) if isinstance(e, ButtonEvent)]

    try:
        pump(0.2)
        xdotool("windowfocus", "--sync", str(window.x11_window))
        pump(0.1)
        xdotool("keydown", "a")
        pump()
        xdotool("key", "ctrl+alt+shift+z")
        pump()
        assert service.capture.pointer_captured
        xdotool("keyup", "a")
        xdotool("key", "b")
        xdotool("click", "1")  # SDL's pointer grab takes the clicks too
        pump()
        assert keys() == [KeyEvent(KEY_A, True), KeyEvent(KEY_A, False),
                          KeyEvent(48, True), KeyEvent(48, False)]
        assert clicks() == [ButtonEvent(0x110, True), ButtonEvent(0x110, False)]
        xdotool("key", "ctrl+alt+shift+z")
        pump()
        assert not service.capture.pointer_captured
        sent.clear()
        xdotool("key", "b")
        xdotool("click", "3")
        pump()
        assert keys() == [KeyEvent(48, True), KeyEvent(48, False)]
        assert clicks() == [ButtonEvent(0x111, True), ButtonEvent(0x111, False)]
        assert service.capture.buttons_read_elsewhere  # the reader's, not the window loop's
    finally:
        service.close()


@pytest.mark.skipif(shutil.which("xdotool") is None, reason="apt install xdotool")
def test_a_host_without_input_gets_none_and_the_client_says_why_once(window, xvfb):
    sent: list[tuple[PacketType, bytes]] = []
    lines: list[str] = []
    service = ClientInput(log=lines.append)
    for _ in range(2):  # a reconnect to the same host: said once
        service.session_started(session(config_caps=0), lambda *datagram: sent.append(datagram))
    service.attach_presenter(window)
    window.poll_events()
    subprocess.run(["xdotool", "windowfocus", "--sync", str(window.x11_window)],
                   env=xvfb.env(), check=True, timeout=10)
    subprocess.run(["xdotool", "key", "a"], env=xvfb.env(), check=True, timeout=10)
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        window.poll_events()
        time.sleep(0.005)
    service.tick(time.monotonic_ns() + 10**9)  # the held-state snapshot is not sent either
    assert sent == []
    assert service.counters["host_declined"] >= 2  # the press and its release, at least
    assert len(lines) == 1 and lines[0].startswith("rootstream: input is not sent: the host "
                                                   "injects none"), lines
    service.close()


def test_without_a_window_input_is_skipped_with_a_reason():
    lines: list[str] = []
    with open_presenter("null", width=640, height=360) as presenter:
        service = ClientInput(log=lines.append)
        service.attach_presenter(presenter)
        assert not service.capturing
        service.tick(time.monotonic_ns())
        service.close()
    assert "not captured with the null presenter" in lines[0]


def test_overlay_lines_show_rates_over_the_last_refresh():
    overlay = OverlayFigures()
    figures = {"frames_presented": 100, "received_bytes": 1_000_000, "bitrate_kbps": 10_000,
               "latency_ms": {"decode": {"p50": 2.5, "p99": 7.25}, "glass": {}},
               "drops": {"frames lost": 2, "pictures dropped": 0}}
    overlay.lines(figures, 1_000_000_000)
    later = dict(figures, frames_presented=130, received_bytes=1_625_000)
    lines = overlay.lines(later, 1_500_000_000)
    assert lines[0].split() == ["60.0", "fps", "10.00", "Mbit/s", "in", "(host", "encodes",
                                "10.00", "Mbit/s)"]
    assert lines[1].split() == ["decode", "2.5", "ms", "p50", "7.2", "ms", "p99"]
    assert lines[-1] == "drops: frames lost 2"


@pytest.mark.skipif(shutil.which("xdotool") is None, reason="apt install xdotool")
def test_the_x11_presenter_sends_keys_clicks_and_the_wheel_and_takes_the_hotkeys(xvfb_factory):
    from rootstream.protocol.input import AbsoluteMotion, WheelEvent

    xvfb = xvfb_factory(640, 360)
    sent: list[bytes] = []
    lines: list[str] = []
    with open_presenter("x11", width=640, height=360, display=xvfb.display) as window:
        window.present(black_frame(640, 360))
        service = ClientInput(log=lines.append)
        service.session_started(session(), lambda ptype, payload: sent.append(payload))
        service.attach_presenter(window)
        assert service.capturing and service.reader.running
        xdotool, pump = user_of(window, xvfb)
        xdotool("mousemove", "100", "50")
        xdotool("key", "a")
        xdotool("click", "1")
        xdotool("click", "4")
        pump()
        events = [e for p in sent for e in decode_input(p) if not isinstance(e, HeldSnapshot)]
        assert events == [AbsoluteMotion(100, 50, 640, 360), KeyEvent(KEY_A, True),
                          KeyEvent(KEY_A, False), AbsoluteMotion(100, 50, 640, 360),
                          ButtonEvent(0x110, True), ButtonEvent(0x110, False),
                          WheelEvent(120, 0)]
        sent.clear()
        xdotool("key", "ctrl+alt+shift+f")
        pump()
        assert window._fullscreen  # the hotkey ran on the presenter's thread
        assert all(e.code != 33 for p in sent for e in decode_input(p)
                   if isinstance(e, KeyEvent))  # F never reached the host
        actions: list[str] = []
        service.on_control_hotkey = actions.append  # rootstream.client.handoff's hook
        xdotool("key", "ctrl+alt+shift+c", "ctrl+alt+shift+a", "ctrl+alt+shift+d")
        pump()
        assert actions == ["ask", "accept", "deny"]
        assert all(e.code not in (46, 30, 32) for p in sent for e in decode_input(p)
                   if isinstance(e, KeyEvent))  # C, A, D never reached the host
        service.close()
        assert not service.capturing
        assert decode_input(sent[-1])[-1] == HeldSnapshot()  # nothing left held
