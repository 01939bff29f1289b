"""The x11 presenter on real Xvfb displays: pixels read back by the presenter
and independently by the X11 capture, letterboxing after a real resize, the
window manager's close message, XTEST keys, a whole client session, and the
event and shm declarations it added to rootstream._native.xlib against the
real headers."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import av
import numpy as np
import pytest
from session_helpers import HostProcess, rootstream_command

from rootstream._native import xlib
from rootstream._native.xlib import ffi
from rootstream.capture.x11 import X11Capture
from rootstream.errors import PresentError
from rootstream.present import open_presenter, probe_presenters
from rootstream.present.x11 import NO_DISPLAY, X11Presenter

needs_xdotool = pytest.mark.skipif(shutil.which("xdotool") is None,
                                   reason="xdotool missing (apt-get install xdotool)")

# B, G, R of the four quadrants: top-left red, top-right green, bottom-left
# blue, bottom-right white.
QUADRANTS_BGR = ((0, 0, 255), (0, 255, 0), (255, 0, 0), (255, 255, 255))
TOLERANCE = 24  # limited-range 4:2:0 and back: a few levels off, never a wrong colour


def quadrant_frame(width: int, height: int, pixel_format: str = "nv12") -> av.VideoFrame:
    rgb = np.empty((height, width, 3), np.uint8)
    h2, w2 = height // 2, width // 2
    for (b, g, r), rows, cols in zip(QUADRANTS_BGR,
                                     (slice(0, h2), slice(0, h2), slice(h2, None),
                                      slice(h2, None)),
                                     (slice(0, w2), slice(w2, None), slice(0, w2),
                                      slice(w2, None)), strict=True):
        rgb[rows, cols] = (r, g, b)
    # Encoded as the host encodes: BT.709, limited range.
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format=pixel_format, dst_colorspace="ITU709", dst_color_range="MPEG")


def assert_quadrants(bgrx: np.ndarray, box=None) -> None:
    x, y, w, h = box or (0, 0, bgrx.shape[1], bgrx.shape[0])
    for (b, g, r), (fx, fy) in zip(QUADRANTS_BGR, ((0.25, 0.25), (0.75, 0.25), (0.25, 0.75),
                                                   (0.75, 0.75)), strict=True):
        cx, cy = x + int(w * fx), y + int(h * fy)
        got = bgrx[cy - 4:cy + 4, cx - 4:cx + 4, :3].reshape(-1, 3).mean(axis=0)
        assert np.all(np.abs(got - (b, g, r)) < TOLERANCE), (
            f"at {cx},{cy} want BGR {(b, g, r)}, got {got}")


def wait_for_event(presenter, kind: str, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        for event in presenter.poll_events():
            seen.append(event)
            if event.kind == kind:
                return event, seen
        time.sleep(0.01)
    raise AssertionError(f"no {kind!r} event within {timeout} s; saw {seen}")


@pytest.mark.parametrize("pixel_format", ["nv12", "yuv420p"])
def test_colour_blocks_reach_the_window(xvfb, pixel_format):
    with X11Presenter(width=320, height=180, display=xvfb.display) as presenter:
        assert presenter.use_shm and presenter.fallbacks_used == []
        presenter.present(quadrant_frame(320, 180, pixel_format))
        assert presenter.frames_presented == 1
        assert_quadrants(presenter.read_pixels())
        # Independently of the presenter: the X11 capture grabs the screen
        # where the window sits (top-left: no window manager on Xvfb).
        with X11Capture(display=xvfb.display, region=(0, 0, 320, 180), use_damage=False,
                        cursor=False) as grab:
            frame = grab.grab(timeout=1.0)
            assert_quadrants(frame.pixels[:, :320 * 4].reshape(180, 320, 4))


def test_frames_alternate_between_the_two_segments(xvfb):
    with X11Presenter(width=320, height=180, display=xvfb.display) as presenter:
        for _ in range(10):
            presenter.present(quadrant_frame(320, 180))
        blue = av.VideoFrame.from_ndarray(np.full((180, 320, 3), (0, 0, 255), np.uint8),
                                          format="rgb24").reformat(
            format="nv12", dst_colorspace="ITU709", dst_color_range="MPEG")
        presenter.present(blue)
        centre = presenter.read_pixels()[90, 160, :3].astype(int)
        assert abs(centre - (255, 0, 0)).max() < TOLERANCE, centre
        assert presenter.frames_presented == 11


def test_without_mit_shm_the_pixels_go_through_the_socket(xvfb):
    with X11Presenter(width=320, height=180, display=xvfb.display,
                      use_shm=False) as presenter:
        assert not presenter.use_shm
        assert presenter.fallbacks_used == ["MIT-SHM off (use_shm=False): XPutImage"]
        presenter.present(quadrant_frame(320, 180))
        assert_quadrants(presenter.read_pixels())
        assert "via XPutImage" in presenter.describe()


@needs_xdotool
def test_a_resized_window_letterboxes_the_picture(xvfb):
    with X11Presenter(width=320, height=180, display=xvfb.display) as presenter:
        presenter.present(quadrant_frame(320, 180))
        subprocess.run(["xdotool", "windowsize", str(presenter.x11_window), "640", "180"],
                       env=xvfb.env(), check=True, timeout=10)
        event, _ = wait_for_event(presenter, "resized")
        assert (event.width, event.height) == (640, 180) == presenter.window_size()
        # The last frame is shown again at the new size, without a new one arriving.
        pixels = presenter.read_pixels()
        assert pixels.shape == (180, 640, 4)
        box = presenter.output_rect()
        assert tuple(box) == (160, 0, 320, 180)
        assert_quadrants(pixels, box)
        assert pixels[:, :150, :3].max() == 0 and pixels[:, 490:, :3].max() == 0  # the bars
        assert presenter.window_to_stream(100, 90) is None
        assert presenter.window_to_stream(160, 0) == (0, 0)
        assert presenter.window_to_stream(639 - 160, 179) == (319, 179)
        presenter.present(quadrant_frame(320, 180))
        assert_quadrants(presenter.read_pixels(), box)


def test_the_window_managers_close_message_is_a_quit_event(xvfb):
    with X11Presenter(width=320, height=180, display=xvfb.display) as presenter:
        _send_delete_window(xvfb.display, presenter.x11_window)
        event, seen = wait_for_event(presenter, "quit")
        assert [e.kind for e in seen] == ["quit"]


def _send_delete_window(display_name: str, window: int) -> None:
    """What a window manager does when the user clicks the close button."""
    x11 = xlib.load().x11
    display = x11.XOpenDisplay(display_name.encode())
    assert display != ffi.NULL
    try:
        event = ffi.new("XEvent *")
        message = ffi.cast("XClientMessageEvent *", event)
        message.type = xlib.CLIENT_MESSAGE
        message.window = window
        message.message_type = x11.XInternAtom(display, b"WM_PROTOCOLS", False)
        message.format = 32
        message.data.l[0] = x11.XInternAtom(display, b"WM_DELETE_WINDOW", False)
        assert x11.XSendEvent(display, window, False, 0, event)
        x11.XSync(display, False)
    finally:
        x11.XCloseDisplay(display)


@needs_xdotool
def test_keys_typed_into_the_window_are_key_events(xvfb):
    with X11Presenter(width=320, height=180, display=xvfb.display) as presenter:
        # XTEST keys go to the window under the pointer (Xvfb's focus follows it).
        subprocess.run(["xdotool", "mousemove", "100", "100", "key", "F11", "shift+q"],
                       env=xvfb.env(), check=True, timeout=10)
        deadline = time.monotonic() + 5
        events = []
        while len(events) < 6 and time.monotonic() < deadline:
            events += [e for e in presenter.poll_events() if e.kind == "key"]
            time.sleep(0.01)
        pressed = [(e.key, e.modifiers) for e in events if e.pressed]
        assert pressed[0] == ("F11", 0)
        assert ("Q", 0x0001) in pressed  # shift held: SDL's KMOD_LSHIFT
        assert [e.pressed for e in events[:2]] == [True, False]


def test_fullscreen_without_a_window_manager_covers_the_screen(xvfb):
    with X11Presenter(width=320, height=180, display=xvfb.display) as presenter:
        presenter.present(quadrant_frame(320, 180))
        assert presenter.toggle_fullscreen() is True
        event, _ = wait_for_event(presenter, "resized")
        assert (event.width, event.height) == (xvfb.width, xvfb.height)
        assert_quadrants(presenter.read_pixels())  # 16:9 on 16:9: no bars
        assert presenter.toggle_fullscreen() is False
        event, _ = wait_for_event(presenter, "resized")
        assert (event.width, event.height) == (320, 180)


def test_under_a_window_manager_fullscreen_is_asked_for_the_ewmh_way(xvfb):
    with X11Presenter(width=320, height=180, display=xvfb.display) as presenter, \
            _EwmhListener(xvfb.display) as window_manager:
        assert presenter.toggle_fullscreen() is True
        assert window_manager.state_requests() == [
            (presenter.x11_window, 2, window_manager.atom(b"_NET_WM_STATE_FULLSCREEN"))]
        assert presenter.window_size() == (320, 180)  # resizing is the manager's job


class _EwmhListener:
    """The part of a window manager that matters here: it announces itself on
    the root window (_NET_SUPPORTING_WM_CHECK) and receives what clients send
    to the root with SubstructureRedirect."""

    def __init__(self, display_name: str):
        self.x11 = x11 = xlib.load().x11
        self.display = x11.XOpenDisplay(display_name.encode())
        assert self.display != ffi.NULL
        self.root = x11.XRootWindow(self.display, 0)
        self.check = x11.XCreateSimpleWindow(self.display, self.root, 0, 0, 1, 1, 0, 0, 0)
        window = ffi.new("Window[1]", [self.check])
        x11.XChangeProperty(self.display, self.root, self.atom(b"_NET_SUPPORTING_WM_CHECK"),
                            xlib.XA_WINDOW, 32, xlib.PROP_MODE_REPLACE,
                            ffi.cast("unsigned char *", window), 1)
        x11.XSelectInput(self.display, self.root, xlib.SUBSTRUCTURE_REDIRECT_MASK)
        x11.XSync(self.display, False)

    def atom(self, name: bytes) -> int:
        return self.x11.XInternAtom(self.display, name, False)

    def state_requests(self, timeout: float = 5.0) -> list[tuple[int, int, int]]:
        event = ffi.new("XEvent *")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while self.x11.XPending(self.display):
                self.x11.XNextEvent(self.display, event)
                message = ffi.cast("XClientMessageEvent *", event)
                if (event.type == xlib.CLIENT_MESSAGE
                        and message.message_type == self.atom(b"_NET_WM_STATE")):
                    return [(message.window, message.data.l[0], message.data.l[1])]
            time.sleep(0.01)
        return []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.x11.XDestroyWindow(self.display, self.check)
        self.x11.XCloseDisplay(self.display)


def test_starting_fullscreen(xvfb):
    with X11Presenter(width=320, height=180, display=xvfb.display,
                      fullscreen=True) as presenter:
        assert presenter.window_size() == (xvfb.width, xvfb.height)


def test_the_overlay_is_blended_into_the_picture_then_gone(xvfb):
    with X11Presenter(width=320, height=180, display=xvfb.display) as presenter:
        presenter.set_overlay(["reconnecting..."])
        assert presenter.overlay_problem() == ""
        presenter.present(quadrant_frame(320, 180))
        corner = presenter.read_pixels()[:30, :160, :3].astype(int)
        assert (corner.min(axis=2) > 200).sum() > 50  # white text over the red quadrant
        assert corner[2, 2, 2] < 120  # the red under the translucent black is darker
        presenter.set_overlay(None)
        presenter.present(quadrant_frame(320, 180))
        assert_quadrants(presenter.read_pixels())


def test_listeners_get_the_raw_x_events(xvfb):
    with X11Presenter(width=320, height=180, display=xvfb.display) as presenter:
        types = []
        presenter.add_event_listener(lambda event: types.append(event.type))
        _send_delete_window(xvfb.display, presenter.x11_window)
        wait_for_event(presenter, "quit")
        assert xlib.CLIENT_MESSAGE in types


def test_another_thread_gets_a_present_error(xvfb):
    import threading

    with X11Presenter(width=320, height=180, display=xvfb.display) as presenter:
        caught = []
        worker = threading.Thread(target=lambda: caught.append(
            pytest.raises(PresentError, presenter.poll_events)))
        worker.start()
        worker.join()
        assert "did not open it" in str(caught[0].value)


def test_no_display_is_a_present_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(PresentError) as caught:
        X11Presenter(width=320, height=180)
    assert str(caught.value) == NO_DISPLAY
    assert caught.value.details == ["DISPLAY is not set"]
    assert X11Presenter.probe() == f"{NO_DISPLAY}: DISPLAY is not set"


def test_a_display_nobody_serves_is_a_present_error():
    with pytest.raises(PresentError) as caught:
        X11Presenter(width=320, height=180, display=":4095")
    assert str(caught.value) == NO_DISPLAY
    assert caught.value.details == ["cannot connect to X display ':4095'"]


def test_the_registry_opens_it_by_name(xvfb, monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb.display)
    with open_presenter("x11", width=320, height=180, title="rootstream: é") as presenter:
        assert isinstance(presenter, X11Presenter)
    assert {p.name: p.ok for p in probe_presenters()}["x11"] is True


def _shm_segments() -> int:
    return len(Path("/proc/sysvipc/shm").read_text().splitlines())


def test_a_hundred_open_close_cycles_leak_nothing(xvfb):
    segments, fds = _shm_segments(), len(os.listdir("/proc/self/fd"))
    for _ in range(100):
        presenter = X11Presenter(width=64, height=36, display=xvfb.display)
        presenter.present(quadrant_frame(64, 36))
        presenter.close()
        presenter.close()  # twice is harmless
    assert _shm_segments() == segments
    assert len(os.listdir("/proc/self/fd")) == fds


def test_a_client_session_shows_frames_with_x11(xvfb, tmp_path, udp_port):
    host = HostProcess(udp_port, "--source", "test", "--size", "640x360", "--fps", "30",
                       log_dir=tmp_path)
    try:
        host.wait_for("listening on")
        client = subprocess.Popen(
            rootstream_command("connect", f"127.0.0.1:{udp_port}", "--present", "x11",
                               "--frames", "20"),
            env=xvfb.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            seen = _window_content(xvfb.display, client)
            out, err = client.communicate(timeout=30)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
        assert client.returncode == 0, err
        assert "showing with x11" in err
        assert "20 frames shown" in out + err
        assert seen, "the client's window never showed a picture"
    finally:
        host.stop()


def _window_content(display: str, client: subprocess.Popen) -> bool:
    """Whether a picture (many distinct colours) appeared top-left while the client ran."""
    with X11Capture(display=display, region=(0, 0, 640, 360), use_damage=False,
                    cursor=False) as grab:
        while client.poll() is None:
            frame = grab.grab(timeout=1.0)
            pixels = frame.pixels[:, :640 * 4].reshape(-1, 4)[::97, :3]
            if len(np.unique(pixels, axis=0)) > 8:
                return True
            time.sleep(0.02)
    return False


# -- the declarations this presenter added to rootstream._native.xlib ------------------

NEW_STRUCTS = ["XKeyEvent", "XExposeEvent", "XConfigureEvent", "XClientMessageEvent",
               "XShmCompletionEvent"]
NEW_CONSTANTS = {
    "KEY_PRESS": "KeyPress", "KEY_RELEASE": "KeyRelease", "EXPOSE": "Expose",
    "MAP_NOTIFY": "MapNotify", "CONFIGURE_NOTIFY": "ConfigureNotify",
    "CLIENT_MESSAGE": "ClientMessage", "KEY_PRESS_MASK": "KeyPressMask",
    "KEY_RELEASE_MASK": "KeyReleaseMask", "EXPOSURE_MASK": "ExposureMask",
    "STRUCTURE_NOTIFY_MASK": "StructureNotifyMask",
    "SUBSTRUCTURE_NOTIFY_MASK": "SubstructureNotifyMask",
    "SUBSTRUCTURE_REDIRECT_MASK": "SubstructureRedirectMask", "SHIFT_MASK": "ShiftMask",
    "CONTROL_MASK": "ControlMask", "MOD1_MASK": "Mod1Mask", "MOD4_MASK": "Mod4Mask",
    "SHM_COMPLETION": "ShmCompletion", "XA_ATOM": "XA_ATOM", "XA_WINDOW": "XA_WINDOW",
    "PROP_MODE_REPLACE": "PropModeReplace",
}


def test_the_window_declarations_match_the_headers(tmp_path):
    headers = ["X11/Xlib.h", "X11/Xatom.h", "X11/extensions/XShm.h"]
    if shutil.which("gcc") is None or not all(Path("/usr/include", h).exists()
                                              for h in headers):
        pytest.skip("gcc or X headers missing: apt-get install gcc libx11-dev libxext-dev")
    ours, body = [], []
    for struct in NEW_STRUCTS:
        ours.append(f"sizeof {struct} {ffi.sizeof(struct)}")
        body.append(f'printf("sizeof {struct} %zu\\n", sizeof({struct}));')
        for field, _ in ffi.typeof(struct).fields:
            ours.append(f"offsetof {struct}.{field} {ffi.offsetof(struct, field)}")
            body.append(f'printf("offsetof {struct}.{field} %zu\\n", '
                        f'offsetof({struct}, {field}));')
    for name, theirs in NEW_CONSTANTS.items():
        ours.append(f"constant {name} {getattr(xlib, name)}")
        body.append(f'printf("constant {name} %lu\\n", (unsigned long)({theirs}));')
    source = tmp_path / "layout.c"
    source.write_text("#include <stddef.h>\n#include <stdio.h>\n"
                      + "".join(f"#include <{h}>\n" for h in headers)
                      + "int main(void) {\n" + "\n".join(body) + "\nreturn 0;\n}\n")
    binary = tmp_path / "layout"
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Werror", "-o", str(binary), str(source)],
                   check=True, timeout=60)
    theirs = subprocess.run([str(binary)], check=True, capture_output=True, text=True,
                            timeout=10).stdout.splitlines()
    assert ours == theirs
