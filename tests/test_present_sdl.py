"""The SDL presenter in real windows: Xvfb with the x11 driver, and SDL's dummy driver.

Pixels are checked twice: through SDL's own read-back, and independently by
asking the X server for the window's contents (XGetImage through libX11).
SDL is initialised and shut down by each presenter, inside each test.
"""

from __future__ import annotations

import ctypes
import glob
import subprocess
import threading
import time

import numpy as np
import pytest
import sdl2
from test_present import QUADRANTS_RGB, quadrant_frame

from rootstream.decode import open_decoder
from rootstream.encode import open_encoder
from rootstream.errors import PresentError
from rootstream.present import open_presenter, probe_presenters

TOLERANCE = 16  # per 8-bit channel: limited-range YUV and chroma subsampling


# -- a little of libX11, for an independent look at the screen -----------------

class _XImage(ctypes.Structure):
    _fields_ = [("width", ctypes.c_int), ("height", ctypes.c_int), ("xoffset", ctypes.c_int),
                ("format", ctypes.c_int), ("data", ctypes.c_void_p),
                ("byte_order", ctypes.c_int), ("bitmap_unit", ctypes.c_int),
                ("bitmap_bit_order", ctypes.c_int), ("bitmap_pad", ctypes.c_int),
                ("depth", ctypes.c_int), ("bytes_per_line", ctypes.c_int),
                ("bits_per_pixel", ctypes.c_int)]


class _XClientMessageEvent(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                ("display", ctypes.c_void_p), ("window", ctypes.c_ulong),
                ("message_type", ctypes.c_ulong), ("format", ctypes.c_int),
                ("data", ctypes.c_long * 5)]


class _XEvent(ctypes.Union):
    _fields_ = [("xclient", _XClientMessageEvent), ("pad", ctypes.c_long * 24)]


def _xlib():
    x11 = ctypes.CDLL("libX11.so.6")
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XGetImage.restype = ctypes.POINTER(_XImage)
    x11.XGetImage.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int,
                              ctypes.c_uint, ctypes.c_uint, ctypes.c_ulong, ctypes.c_int]
    x11.XInternAtom.restype = ctypes.c_ulong
    x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x11.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long,
                               ctypes.POINTER(_XEvent)]
    x11.XFree.argtypes = [ctypes.c_void_p]
    x11.XFlush.argtypes = x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    return x11


def x_grab(display: str, window: int, width: int, height: int) -> np.ndarray:
    """The window's pixels as the X server has them, BGRX."""
    x11 = _xlib()
    dpy = x11.XOpenDisplay(display.encode())
    assert dpy, f"cannot open {display}"
    try:
        image = x11.XGetImage(dpy, window, 0, 0, width, height, 0xFFFFFFFF, 2)  # ZPixmap
        assert image, "XGetImage failed"
        info = image.contents
        assert info.bits_per_pixel == 32
        raw = ctypes.string_at(info.data, info.bytes_per_line * height)
        x11.XFree(info.data)
        x11.XFree(image)
    finally:
        x11.XCloseDisplay(dpy)
    rows = np.frombuffer(raw, np.uint8).reshape(height, info.bytes_per_line)
    return rows[:, :width * 4].reshape(height, width, 4)


def x_close_window(display: str, window: int) -> None:
    """Ask the window to close the way a window manager's close button does."""
    x11 = _xlib()
    dpy = x11.XOpenDisplay(display.encode())
    try:
        event = _XEvent()
        event.xclient.type = 33  # ClientMessage
        event.xclient.window = window
        event.xclient.message_type = x11.XInternAtom(dpy, b"WM_PROTOCOLS", 0)
        event.xclient.format = 32
        event.xclient.data[0] = x11.XInternAtom(dpy, b"WM_DELETE_WINDOW", 0)
        assert x11.XSendEvent(dpy, window, 0, 0, ctypes.byref(event))
        x11.XFlush(dpy)
    finally:
        x11.XCloseDisplay(dpy)


# -- helpers -------------------------------------------------------------------

@pytest.fixture
def x11_env(xvfb, monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb.display)
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    return xvfb


def assert_quadrants(pixels: np.ndarray, box=None) -> None:
    """The four colours at the centres of the picture's quadrants (BGRX)."""
    h, w = pixels.shape[:2]
    x0, y0, bw, bh = box or (0, 0, w, h)
    centres = [(y0 + bh // 4, x0 + bw // 4), (y0 + bh // 4, x0 + 3 * bw // 4),
               (y0 + 3 * bh // 4, x0 + bw // 4), (y0 + 3 * bh // 4, x0 + 3 * bw // 4)]
    for (y, x), rgb in zip(centres, QUADRANTS_RGB, strict=True):
        got = pixels[y, x, :3].astype(int)
        assert np.abs(got - rgb[::-1]).max() <= TOLERANCE, f"at ({x},{y}): {got} vs {rgb[::-1]}"


def poll_until(presenter, predicate, seconds: float = 3.0) -> list:
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen += presenter.poll_events()
        if any(predicate(e) for e in seen):
            return seen
        time.sleep(0.01)
    raise AssertionError(f"event not seen; got {seen}")


def xdotool(display: str, *args: str) -> None:
    subprocess.run(["xdotool", *args], check=True, timeout=10,
                   env={"DISPLAY": display, "PATH": "/usr/bin:/bin"})


# -- tests ----------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["nv12", "yuv420p"])
def test_x11_window_shows_the_frame(x11_env, fmt):
    with open_presenter("sdl", width=640, height=360) as presenter:
        assert presenter.video_driver == "x11"
        presenter.present(quadrant_frame(640, 360, fmt))
        pixels = presenter.read_pixels()
        assert pixels.shape == (360, 640, 4)
        assert_quadrants(pixels)
        assert presenter.frames_presented == 1 and presenter.conversions == 0
        # What the X server shows, not what SDL says it drew.
        deadline = time.monotonic() + 3
        while True:
            try:
                assert_quadrants(x_grab(x11_env.display, presenter.x11_window, 640, 360))
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                presenter.present(quadrant_frame(640, 360, fmt))
                time.sleep(0.05)


def test_resized_window_letterboxes_and_maps_the_mouse(x11_env):
    with open_presenter("sdl", width=640, height=360, renderer="software") as presenter:
        presenter.present(quadrant_frame(640, 360))
        xdotool(x11_env.display, "windowsize", str(presenter.x11_window), "800", "300")
        poll_until(presenter, lambda e: e.kind == "resized" and (e.width, e.height) == (800, 300))
        presenter.present(quadrant_frame(640, 360))
        pixels = presenter.read_pixels()
        assert pixels.shape == (300, 800, 4)
        assert pixels[:, :130, :3].max() == 0 and pixels[:, 670:, :3].max() == 0  # bars
        assert_quadrants(pixels, (133, 0, 533, 300))
        assert presenter.window_to_stream(5, 150) is None
        assert presenter.window_to_stream(133, 0) == (0, 0)
        assert presenter.window_to_stream(665, 299) == (639, 359)
        assert presenter.window_to_stream(399, 150) == (320, 180)

        presenter.set_window_size(400, 600)  # now taller than the picture
        poll_until(presenter, lambda e: e.kind == "resized" and (e.width, e.height) == (400, 600))
        pixels = presenter.read_pixels()
        assert pixels[:180, :, :3].max() == 0 and pixels[420:, :, :3].max() == 0
        assert_quadrants(pixels, (0, 187, 400, 225))
        assert presenter.window_to_stream(200, 100) is None


def test_a_new_stream_size_gets_a_new_texture(x11_env):
    with open_presenter("sdl", width=640, height=360, renderer="software") as presenter:
        presenter.present(quadrant_frame(640, 360))
        presenter.present(quadrant_frame(320, 360))  # narrower stream, same window
        assert (presenter.width, presenter.height) == (320, 360)
        pixels = presenter.read_pixels()
        assert pixels[:, :150, :3].max() == 0  # pillarbox on both sides
        assert_quadrants(pixels, (160, 0, 320, 360))


def test_closing_the_window_is_a_quit_event_and_listeners_see_raw_events(x11_env):
    raw = []
    with open_presenter("sdl", width=320, height=180, renderer="software") as presenter:
        presenter.add_event_listener(lambda event: raw.append(event.type))
        presenter.present(quadrant_frame(320, 180))
        x_close_window(x11_env.display, presenter.x11_window)
        events = poll_until(presenter, lambda e: e.kind == "quit")
    assert [e.kind for e in events].count("quit") == 1
    assert sdl2.SDL_WINDOWEVENT in raw


def test_keys_arrive_as_hotkey_events(x11_env):
    raw = []
    with open_presenter("sdl", width=320, height=180, renderer="software") as presenter:
        presenter.add_event_listener(lambda event: raw.append(event.type))
        presenter.present(quadrant_frame(320, 180))
        presenter.poll_events()
        xdotool(x11_env.display, "windowfocus", str(presenter.x11_window))
        xdotool(x11_env.display, "key", "F11")
        events = poll_until(presenter, lambda e: e.kind == "key" and not e.pressed)
    keys = [(e.key, e.pressed) for e in events if e.kind == "key"]
    assert keys == [("F11", True), ("F11", False)]
    assert sdl2.SDL_KEYDOWN in raw and sdl2.SDL_KEYUP in raw


def test_fullscreen_toggles_to_the_whole_screen_and_back(x11_env):
    with open_presenter("sdl", width=640, height=360, renderer="software") as presenter:
        presenter.present(quadrant_frame(640, 360))
        assert presenter.toggle_fullscreen() is True
        poll_until(presenter, lambda e: e.kind == "resized" and (e.width, e.height) == (1280, 720))
        presenter.present(quadrant_frame(640, 360))
        assert_quadrants(presenter.read_pixels())
        assert presenter.window_to_stream(1279, 719) == (639, 359)
        assert presenter.toggle_fullscreen() is False
        poll_until(presenter, lambda e: e.kind == "resized" and (e.width, e.height) == (640, 360))


def test_opening_fullscreen_fills_the_screen(x11_env):
    with open_presenter("sdl", width=640, height=360, fullscreen=True, vsync=True,
                        renderer="software") as presenter:
        presenter.present(quadrant_frame(640, 360))
        deadline = time.monotonic() + 3
        while presenter.window_size() != (1280, 720) and time.monotonic() < deadline:
            presenter.poll_events()
            time.sleep(0.01)
        assert presenter.window_size() == (1280, 720)
        assert presenter.toggle_fullscreen() is False


def test_calls_from_another_thread_are_refused(x11_env):
    errors = []
    with open_presenter("sdl", width=320, height=180, renderer="software") as presenter:
        def intruder():
            try:
                presenter.present(quadrant_frame(320, 180))
            except PresentError as exc:
                errors.append(exc)
        thread = threading.Thread(target=intruder)
        thread.start()
        thread.join()
        assert presenter.frames_presented == 0
    assert len(errors) == 1 and "thread" in str(errors[0])


def test_dummy_driver_presents_without_a_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    with open_presenter("auto", width=320, height=180) as presenter:
        assert presenter.name == "sdl" and presenter.video_driver == "dummy"
        assert presenter.x11_window is None
        presenter.present(quadrant_frame(320, 180))
        assert_quadrants(presenter.read_pixels())
        assert presenter.window_to_stream(160, 90) == (160, 90)
        presenter.present(quadrant_frame(320, 180, "yuvj420p"))  # not a texture format
        assert presenter.conversions == 1
        assert_quadrants(presenter.read_pixels())
        event = sdl2.SDL_Event()
        event.type = sdl2.SDL_QUIT
        assert sdl2.SDL_PushEvent(ctypes.byref(event)) == 1
        # The dummy driver may report its window's size first, depending on timing.
        kinds = [e.kind for e in presenter.poll_events()]
        assert kinds.count("quit") == 1 and set(kinds) <= {"quit", "resized"}, kinds


def test_decoder_output_goes_straight_to_the_texture(monkeypatch):
    """Decoded planes have padded rows (line_size > width): the pitches must
    reach SDL, or the picture shears."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    width, height = 200, 120
    with open_encoder("x264", width=width, height=height, bitrate=4_000_000) as encoder:
        (unit,) = encoder.encode(quadrant_frame(width, height))
    (picture,) = open_decoder("software").decode(unit.data)
    assert picture.planes[0].line_size > width
    with open_presenter("sdl", width=width, height=height) as presenter:
        presenter.present(picture)
        assert presenter.conversions == 0
        assert_quadrants(presenter.read_pixels())


def test_probe_finds_sdl_under_x11_and_not_without_a_display(x11_env, monkeypatch):
    assert {p.name: p.ok for p in probe_presenters()}["sdl"]
    if glob.glob("/dev/dri/card*"):
        pytest.skip("SDL's kmsdrm driver could take a DRM device here")
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("SDL_VIDEODRIVER")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    (sdl,) = [p for p in probe_presenters() if p.name == "sdl"]
    assert not sdl.ok and "no display" in sdl.reason


def test_no_display_is_a_clear_error_with_a_hint(monkeypatch):
    if glob.glob("/dev/dri/card*"):
        pytest.skip("SDL's kmsdrm driver could take a DRM device here")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(PresentError) as caught:
        open_presenter("sdl", width=320, height=180)
    assert "--present null" in caught.value.hint
    with pytest.raises(PresentError) as caught:
        open_presenter("auto", width=320, height=180)
    assert "--present null" in caught.value.hint
    assert [line.split(":")[0] for line in caught.value.details] == ["sdl", "kms"]
