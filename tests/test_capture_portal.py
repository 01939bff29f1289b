"""Wayland capture through a real ScreenCast portal, PipeWire and a headless sway.

Each test starts its own desktop (tests/wayland_desktop.py, ~0.3 s): our
client paints known colours and we check what arrives in the captured frames.
"""

from __future__ import annotations

import logging
import os
import signal
import stat
import time

import numpy as np
import pytest

from rootstream.capture import open_capture
from rootstream.capture.portal import PortalCapture
from rootstream.capture.portal_session import PortalSession
from rootstream.capture.portal_token import TokenStore
from rootstream.errors import CaptureError

pytestmark = pytest.mark.slow

RED, GREEN, BLUE = 0xFF0000, 0x00FF00, 0x0000FF


def bgr(rgb: int) -> list[int]:
    return [rgb & 0xFF, (rgb >> 8) & 0xFF, rgb >> 16]


def pixel(frame, x: int, y: int) -> list[int]:
    """B, G, R of one pixel of a BGRX frame."""
    assert frame.pixel_format == "BGRX"
    return frame.pixels[y, x * 4:x * 4 + 3].tolist()


def grab_until(capture, check, timeout: float = 5.0):
    """Grab frames until ``check(frame)`` holds; the last frame otherwise."""
    deadline = time.monotonic() + timeout
    frame = None
    while time.monotonic() < deadline:
        got = capture.grab(timeout=0.2)
        if got is not None:
            frame = got
            if check(frame):
                return frame
    return frame


def test_colours_painted_by_a_wayland_client_arrive_in_the_frames(wayland_desktop):
    with wayland_desktop.painter() as painter:
        painter.fill(RED)
        with PortalCapture() as capture:
            assert (capture.width, capture.height) == (640, 480)
            assert "ScreenCast portal" in capture.describe()
            frame = grab_until(capture, lambda f: pixel(f, 320, 240) == bgr(RED))
            assert pixel(frame, 320, 240) == bgr(RED)
            painter.rect(10, 20, 100, 50, GREEN)
            frame = grab_until(capture, lambda f: pixel(f, 50, 40) == bgr(GREEN))
            assert pixel(frame, 50, 40) == bgr(GREEN)  # inside the rectangle
            assert pixel(frame, 200, 40) == bgr(RED)  # beside it
            assert pixel(frame, 50, 100) == bgr(RED)  # below it


def test_a_still_screen_gives_no_frame_but_force_gives_the_last_picture(wayland_desktop):
    with wayland_desktop.painter() as painter, PortalCapture() as capture:
        painter.fill(BLUE)
        assert pixel(grab_until(capture, lambda f: pixel(f, 5, 5) == bgr(BLUE)),
                     5, 5) == bgr(BLUE)
        time.sleep(0.2)
        while capture.grab(timeout=0.2) is not None:  # let late buffers pass
            pass
        assert capture.grab(timeout=0.3) is None  # nothing changed: nothing sent
        frame = capture.grab(timeout=0.3, force=True)  # a new client needs a picture
        assert frame is not None and pixel(frame, 600, 400) == bgr(BLUE)


def test_the_capture_stamp_follows_the_commit(wayland_desktop):
    with wayland_desktop.painter() as painter, PortalCapture() as capture:
        painter.fill(RED)
        grab_until(capture, lambda f: pixel(f, 1, 1) == bgr(RED))
        committed = painter.fill(GREEN)
        frame = grab_until(capture, lambda f: pixel(f, 1, 1) == bgr(GREEN))
        # Same clock (CLOCK_MONOTONIC) on both sides: the frame was made after
        # the commit, and well within the time the test took.
        assert committed < frame.stamps.captured < time.monotonic_ns()


def test_the_compositor_copies_no_more_than_the_fps_we_ask_for(wayland_desktop):
    """xdg-desktop-portal-wlr spaces its screencopies by the negotiated maxFramerate:
    a 60 Hz repaint under --fps 20 must not cost sway 60 copies a second."""
    with wayland_desktop.painter() as painter, PortalCapture(fps=20) as capture:
        assert capture._stream.format.max_framerate == (20, 1)
        painter.fill(RED)
        grab_until(capture, lambda f: pixel(f, 1, 1) == bgr(RED))
        before = capture._stream.process_ns.total
        start = time.monotonic()
        colour = 0
        while time.monotonic() - start < 1.5:  # the painter changes 60 times a second
            colour += 1
            painter.rect(0, 0, 32, 32, colour)
            capture.grab(timeout=0)
            time.sleep(1 / 60)
        buffers = capture._stream.process_ns.total - before
        elapsed = time.monotonic() - start
        assert 0 < buffers <= 20 * elapsed * 1.25 + 2, f"{buffers} buffers in {elapsed:.2f} s"


def test_only_damaged_rectangles_are_copied_and_frames_stay_whole(wayland_desktop):
    with wayland_desktop.painter() as painter, PortalCapture() as capture:
        painter.fill(RED)
        grab_until(capture, lambda f: pixel(f, 1, 1) == bgr(RED))
        for i, colour in enumerate([GREEN, BLUE, GREEN, BLUE, GREEN, BLUE]):
            painter.rect(100 + 20 * i, 100, 10, 10, colour)
            frame = grab_until(capture, lambda f, i=i, c=colour:
                               pixel(f, 105 + 20 * i, 105) == bgr(c))
            assert pixel(frame, 105 + 20 * i, 105) == bgr(colour)
            for j in range(i):  # the earlier squares, copied into other arrays before
                earlier = [GREEN, BLUE][j % 2]
                assert pixel(frame, 105 + 20 * j, 105) == bgr(earlier)
            assert pixel(frame, 600, 400) == bgr(RED)
        assert capture._stream.copies["damage"] >= 3


def test_the_restore_token_is_kept_and_a_second_start_does_not_ask(wayland_desktop):
    with wayland_desktop.painter() as painter:
        painter.fill(RED)
        with PortalCapture():
            pass
        token = TokenStore()
        assert token.path.parent == wayland_desktop.state_home / "rootstream"
        assert token.load()
        assert stat.S_IMODE(os.stat(token.path).st_mode) == 0o600
        assert wayland_desktop.chooser_calls() == 1
        with PortalCapture() as capture:  # as after a host restart
            painter.fill(GREEN)
            assert grab_until(capture, lambda f: pixel(f, 9, 9) == bgr(GREEN)) is not None
        assert wayland_desktop.chooser_calls() == 1  # one question over two starts


def test_a_revoked_token_falls_back_to_asking_and_says_so(wayland_desktop, caplog):
    TokenStore().save("0f0f0f0f-this-token-was-revoked")
    with caplog.at_level(logging.INFO, logger="rootstream.capture.portal_session"):
        session = PortalSession()
        try:
            granted = session.start()
            os.close(granted.fd)
        finally:
            session.close()
    assert "no longer known to the portal (revoked or stale)" in caplog.text
    assert session.asked_user and wayland_desktop.chooser_calls() == 1
    assert TokenStore().load() not in (None, "0f0f0f0f-this-token-was-revoked")


@pytest.mark.parametrize("part", ["xdpw", "sway"])
def test_the_compositor_ending_the_session_ends_capture_with_a_reason(wayland_desktop, part):
    with wayland_desktop.painter() as painter, PortalCapture() as capture:
        painter.fill(RED)
        assert grab_until(capture, lambda f: pixel(f, 1, 1) == bgr(RED)) is not None
        wayland_desktop.kill(part)
        started = time.monotonic()
        with pytest.raises(CaptureError, match="the screen-sharing session ended") as info:
            for _ in range(50):
                capture.grab(timeout=0.1)
        assert time.monotonic() - started < 3  # no hang
        assert "start the host again" in info.value.hint


def test_auto_picks_the_portal_in_a_wayland_session(wayland_desktop):
    with wayland_desktop.painter() as painter:
        painter.fill(RED)
        with open_capture("auto") as capture:
            assert capture.name == "portal"


def test_a_user_who_cancels_gets_one_sentence_and_a_hint(wayland_desktop):
    wayland_desktop.user_cancels()
    with pytest.raises(CaptureError) as info:
        PortalCapture()
    assert str(info.value) == "screen sharing was cancelled in the portal's dialog"
    assert info.value.hint == "start the host again and choose a screen to share"


def test_no_portal_on_the_bus_gives_one_sentence_and_a_hint(wayland_desktop):
    wayland_desktop.kill("portal")
    with pytest.raises(CaptureError) as info:
        PortalCapture()
    assert str(info.value) == "xdg-desktop-portal is not running on the session bus"
    assert "install xdg-desktop-portal" in info.value.hint


def test_no_session_bus_gives_one_sentence_and_a_hint(monkeypatch, tmp_path):
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # holds no bus socket
    with pytest.raises(CaptureError) as info:
        PortalCapture()
    assert str(info.value) == "there is no D-Bus session bus to reach the screen-sharing portal"
    assert "DBUS_SESSION_BUS_ADDRESS" in info.value.hint


def test_a_dead_bus_gives_one_sentence_and_a_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus-here")
    with pytest.raises(CaptureError) as info:
        PortalCapture()
    assert str(info.value) == "cannot connect to the D-Bus session bus"
    assert info.value.hint


def test_the_portal_takes_no_output_name(wayland_desktop):
    with pytest.raises(CaptureError, match="does not take output") as info:
        open_capture("portal", output="HEADLESS-1")
    assert info.value.hint


def test_frames_are_bgrx_rows_of_the_screen_width(wayland_desktop):
    with wayland_desktop.painter() as painter, PortalCapture() as capture:
        painter.fill(GREEN)
        frame = grab_until(capture, lambda f: pixel(f, 0, 0) == bgr(GREEN))
        rows = frame.pixels[:, :frame.width * 4].reshape(frame.height, frame.width, 4)
        assert np.all(rows[..., :3] == bgr(GREEN))


def test_x11_capture_refuses_xwayland_and_points_to_the_portal(wayland_desktop):
    display = wayland_desktop.start_xwayland()
    with pytest.raises(CaptureError, match="is Xwayland, which shows only X programs") as info:
        open_capture("x11", display=display)
    assert "--source portal" in info.value.hint
    # Under auto a named X display is a choice of screen: the portal (which
    # takes no display) is passed over, and the refusal is what the user reads.
    with pytest.raises(CaptureError) as info:
        open_capture("auto", display=display)
    assert any(line.startswith("x11: X display") and "Xwayland" in line
               for line in info.value.details)


def test_doctor_walks_the_portal_step_by_step(wayland_desktop):
    from rootstream.capture.portal_probe import portal_steps

    steps = {step: (ok, found) for step, ok, found in portal_steps()}
    assert list(steps) == ["Wayland session", "session bus", "ScreenCast portal",
                           "source types", "cursor modes", "restore token"]
    assert all(ok for ok, _ in steps.values())
    assert "version 4" in steps["ScreenCast portal"][1]
    assert "embedded" in steps["cursor modes"][1]
    assert steps["restore token"][1].startswith("none stored yet")
    with wayland_desktop.painter() as painter:
        painter.fill(RED)
        PortalCapture().close()
    found = dict((step, found) for step, _, found in portal_steps())["restore token"]
    assert found.startswith(f"stored in {TokenStore().path}")
    wayland_desktop.kill("portal")
    last = list(portal_steps())[-1]
    assert last[:2] == ("ScreenCast portal", False)
    assert "xdg-desktop-portal is not running on the session bus; install" in last[2]


def test_the_portal_leaving_the_bus_ends_capture_with_a_reason(wayland_desktop):
    with wayland_desktop.painter() as painter, PortalCapture() as capture:
        painter.fill(RED)
        assert grab_until(capture, lambda f: pixel(f, 1, 1) == bgr(RED)) is not None
        wayland_desktop.kill("portal")  # xdg-desktop-portal itself; PipeWire goes on
        with pytest.raises(CaptureError, match="the desktop portal left the session bus"):
            for _ in range(30):
                capture.grab(timeout=0.1)


def test_a_portal_that_never_answers_gives_one_sentence_and_a_hint(wayland_desktop):
    backend = wayland_desktop.processes["xdpw"]
    os.kill(backend.pid, signal.SIGSTOP)  # a hung portal backend
    try:
        session = PortalSession(timeout=1, choose_timeout=1)
        started = time.monotonic()
        try:
            with pytest.raises(CaptureError) as info:
                session.start()
        finally:
            session.close()
        assert time.monotonic() - started < 5
    finally:
        os.kill(backend.pid, signal.SIGCONT)
    assert str(info.value).startswith("the desktop portal did not answer ")
    assert info.value.hint


def test_the_bus_dying_mid_handshake_gives_one_sentence_and_a_hint(wayland_desktop):
    session = PortalSession()
    wayland_desktop.kill("dbus")
    try:
        with pytest.raises(CaptureError) as info:
            session.start()
    finally:
        session.close()
    assert str(info.value) == "lost the connection to the D-Bus session bus"
    assert "DBUS_SESSION_BUS_ADDRESS" in info.value.hint
