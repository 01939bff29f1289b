"""The X11 backend against real Xvfb servers, drawn on by a second real X client."""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import threading
import time

import numpy as np
import pytest

from rootstream._native import xlib
from rootstream._native.xlib import ffi
from rootstream.capture.x11 import LOST_DISPLAY, NO_DISPLAY, X11Capture
from rootstream.errors import CaptureError
from rootstream.marker import Marker, draw_marker, read_marker_bgrx

NOTHING_CHANGES = 0.3  # seconds to wait for a frame that must not come


class Painter:
    """A separate X client that draws on the root window or in its own window."""

    def __init__(self, display: str):
        self.x11 = xlib.load().x11
        self.display = self.x11.XOpenDisplay(display.encode())
        assert self.display != ffi.NULL
        self.root = self.x11.XRootWindow(self.display, self.x11.XDefaultScreen(self.display))
        self.gc = self.x11.XCreateGC(self.display, self.root, 0, ffi.NULL)

    def fill(self, x: int, y: int, w: int, h: int, rgb: int, drawable: int | None = None):
        self.x11.XSetForeground(self.display, self.gc, rgb)
        self.x11.XFillRectangle(self.display, drawable or self.root, self.gc, x, y, w, h)
        self.x11.XSync(self.display, False)

    def put(self, pixels: np.ndarray, width: int, height: int, x: int = 0, y: int = 0):
        """Show a (height, width*4) BGRX array at x, y."""
        image = self.x11.XCreateImage(
            self.display, self.x11.XDefaultVisual(self.display, 0), 24, xlib.ZPIXMAP, 0,
            ffi.cast("char *", ffi.from_buffer(pixels)), width, height, 32, pixels.shape[1])
        self.x11.XPutImage(self.display, self.root, self.gc, image, 0, 0, x, y, width, height)
        image.data = ffi.NULL  # numpy owns the pixels
        self.x11.XDestroyImage(image)
        self.x11.XSync(self.display, False)

    def window(self, x: int, y: int, w: int, h: int, background: int) -> int:
        window = self.x11.XCreateSimpleWindow(self.display, self.root, x, y, w, h, 0, 0,
                                              background)
        self.x11.XMapRaised(self.display, window)
        self.x11.XSync(self.display, False)
        return window

    def close(self):
        self.x11.XFreeGC(self.display, self.gc)
        self.x11.XCloseDisplay(self.display)


@pytest.fixture
def painter(xvfb):
    client = Painter(xvfb.display)
    yield client
    client.close()


@contextlib.contextmanager
def xvfb_without(*extensions: str, width: int = 640, height: int = 480, depth: int = 24):
    """An Xvfb with some extensions disabled; Xvfb picks the display number itself."""
    read_end, write_end = os.pipe()
    disabled = [arg for name in extensions for arg in ("-extension", name)]
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{width}x{height}x{depth}",
         "-nolisten", "tcp", *disabled],
        pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    try:
        with os.fdopen(read_end) as ready:
            yield ":" + ready.readline().strip()
    finally:
        server.terminate()
        server.wait(5)


def pixel(frame, x: int, y: int) -> tuple[int, int, int]:
    b, g, r, _ = frame.pixels[y, x * 4:x * 4 + 4]
    return int(r), int(g), int(b)


def own_shm_segments() -> list[str]:
    """SysV segments created by this process (column 5 of /proc/sysvipc/shm is cpid)."""
    with open("/proc/sysvipc/shm") as table:
        rows = [line.split() for line in table.read().splitlines()[1:]]
    return [row[1] for row in rows if row[4] == str(os.getpid())]


def move_pointer(display: str, *to: int, relative: bool = False) -> None:
    """xdotool: ``mousemove`` warps the pointer (XWarpPointer); ``mousemove_relative``
    moves it as a device would (XTEST), which raises XInput2 raw motion."""
    command = ["mousemove_relative", "--sync", "--"] if relative else ["mousemove", "--sync"]
    subprocess.run(["xdotool", *command, *map(str, to)], check=True, timeout=10,
                   env={**os.environ, "DISPLAY": display})


def test_grabs_what_another_client_drew(xvfb, painter):
    painter.fill(100, 50, 64, 32, 0x336699)
    with X11Capture(xvfb.display) as capture:
        assert capture.fallbacks == []
        assert (capture.width, capture.height, capture.pixel_format) == (1280, 720, "BGRX")
        frame = capture.grab(timeout=5)
    assert pixel(frame, 100, 50) == pixel(frame, 163, 81) == (0x33, 0x66, 0x99)
    assert pixel(frame, 99, 50) != (0x33, 0x66, 0x99)
    assert frame.stride >= 1280 * 4 and frame.pixels.shape == (720, frame.stride)


def test_marker_drawn_by_a_client_reads_back_from_the_capture(xvfb, painter):
    picture = np.full((720, 1280 * 4), 90, np.uint8)
    draw_marker(picture, 1280, 720, 31337, 0xC0FFEE)
    painter.put(picture, 1280, 720)
    with X11Capture(xvfb.display) as capture:
        frame = capture.grab(timeout=5)
        assert read_marker_bgrx(frame.pixels, frame.width, frame.height) == Marker(31337, 0xC0FFEE)


def test_still_screen_yields_nothing_and_a_draw_wakes_the_grab(xvfb, painter):
    with X11Capture(xvfb.display, fps=1000) as capture:
        assert capture.grab(timeout=5) is not None  # the first grab takes the screen as is
        assert capture.grab(timeout=NOTHING_CHANGES) is None
        assert capture.grab(timeout=0) is None
        drawn_at = []

        def draw_later():
            time.sleep(0.1)
            drawn_at.append(time.monotonic_ns())
            painter.fill(10, 10, 20, 20, 0xFF0000)

        thread = threading.Thread(target=draw_later)
        thread.start()
        frame = capture.grab(timeout=30)
        thread.join()
        assert frame is not None and pixel(frame, 15, 15) == (0xFF, 0, 0)
        assert frame.stamps.captured > drawn_at[0]
        assert capture.grab(timeout=NOTHING_CHANGES) is None


def test_changes_faster_than_fps_are_grabbed_at_about_fps(xvfb, painter):
    """A screen that changes before every grab is grabbed at most about
    ``fps`` times a second: after the first two, one per period (ChangeRateCap,
    whose period is 10 % short of 1/fps)."""
    with X11Capture(xvfb.display, fps=20) as capture:
        captured = []
        for i in range(6):
            painter.fill(0, 0, 8, 8, 0x010101 * (i + 1))
            frame = capture.grab(timeout=5)
            assert frame is not None
            captured.append(frame.stamps.captured)
    # 182 ms from the first grab to the last (2 frames of credit, then 45.5
    # ms apart); a lower bound with room for the stamps' read times.
    assert captured[-1] - captured[0] >= 4 * 44_000_000


def test_drawing_inside_a_client_window_is_seen(xvfb, painter):
    with X11Capture(xvfb.display) as capture:
        capture.grab(timeout=5)
        window = painter.window(200, 100, 120, 80, 0x00FF00)
        frame = capture.grab(timeout=30)
        assert frame is not None and pixel(frame, 250, 150) == (0, 0xFF, 0)
        painter.fill(0, 0, 10, 10, 0x0000FF, drawable=window)
        frame = capture.grab(timeout=30)
        assert frame is not None and pixel(frame, 205, 105) == (0, 0, 0xFF)


def test_region_captures_only_its_rectangle_and_ignores_changes_elsewhere(xvfb, painter):
    painter.fill(100, 50, 64, 32, 0x123456)
    with X11Capture(xvfb.display, region=(100, 50, 64, 32)) as capture:
        assert (capture.width, capture.height) == (64, 32)
        frame = capture.grab(timeout=5)
        assert np.all(frame.pixels[:, : 64 * 4].reshape(32, 64, 4)[..., :3] == (0x56, 0x34, 0x12))
        painter.fill(600, 400, 50, 50, 0xFFFFFF)  # outside the region
        assert capture.grab(timeout=NOTHING_CHANGES) is None
        painter.fill(110, 60, 5, 5, 0xABCDEF)  # inside
        frame = capture.grab(timeout=30)
        assert frame is not None and pixel(frame, 12, 12) == (0xAB, 0xCD, 0xEF)


@pytest.mark.parametrize("region", [(1200, 0, 100, 100), (0, 0, 0, 10), (-1, 0, 10, 10)])
def test_region_outside_the_screen_is_refused(xvfb, region):
    with pytest.raises(CaptureError, match="capture region is outside the X screen"):
        X11Capture(xvfb.display, region=region)


@pytest.mark.parametrize("region", [(1, 2, 3), "0,0,10,10", (0, 0, "wide", 10)])
def test_region_that_is_not_four_numbers_is_refused(xvfb, region):
    with pytest.raises(CaptureError, match="capture region must be four numbers"):
        X11Capture(xvfb.display, region=region)


def test_output_selects_a_randr_monitor_by_name(xvfb, painter):
    libs = xlib.load()
    monitor = libs.xrandr.XRRAllocateMonitor(painter.display, 0)
    monitor.name = libs.x11.XInternAtom(painter.display, b"LEFT-HALF", False)
    monitor.x, monitor.y, monitor.width, monitor.height = 0, 0, 640, 720
    monitor.mwidth, monitor.mheight = 160, 180
    libs.xrandr.XRRSetMonitor(painter.display, painter.root, monitor)
    libs.x11.XFree(monitor)
    libs.x11.XSync(painter.display, False)
    with X11Capture(xvfb.display, output="LEFT-HALF") as capture:
        assert capture.region == (0, 0, 640, 720)
        names = [name for name, *_ in capture.outputs()]
        assert "LEFT-HALF" in names
    with pytest.raises(CaptureError, match="no X output named 'HDMI-9'") as info:
        X11Capture(xvfb.display, output="HDMI-9")
    assert "LEFT-HALF" in info.value.hint
    assert any(line.startswith("LEFT-HALF: 640x720+0+0") for line in info.value.details)
    with pytest.raises(CaptureError, match="give a capture region or an output, not both"):
        X11Capture(xvfb.display, output="LEFT-HALF", region=(0, 0, 10, 10))


def test_xgetimage_path_gives_the_same_pixels_and_says_why(xvfb, painter):
    painter.fill(0, 0, 1280, 720, 0x102030)
    painter.fill(5, 5, 100, 100, 0xF0E0D0)
    with X11Capture(xvfb.display) as fast, X11Capture(xvfb.display, use_shm=False) as slow:
        assert slow.fallbacks == ["MIT-SHM off (use_shm=False): XGetImage and a copy per frame"]
        a, b = fast.grab(timeout=5), slow.grab(timeout=5)
        assert np.array_equal(a.pixels[:, : 1280 * 4], b.pixels)
        assert "via XGetImage, XDAMAGE" in slow.describe()


def test_timer_mode_grabs_without_changes(xvfb):
    with X11Capture(xvfb.display, fps=200, use_damage=False) as capture:
        assert capture.fallbacks == [
            "XDAMAGE off (use_damage=False): grabbing 200 times a second"]
        numbers = [capture.grab(timeout=5).sequence for _ in range(3)]
        assert numbers == [0, 1, 2]


def test_server_without_shm_and_damage_falls_back_and_still_captures():
    with xvfb_without("MIT-SHM", "DAMAGE") as display:
        painter = Painter(display)
        painter.fill(1, 2, 3, 4, 0x0A0B0C)
        try:
            with X11Capture(display, fps=200) as capture:
                assert capture.fallbacks == [
                    "MIT-SHM missing on the X server: XGetImage and a copy per frame",
                    "XDAMAGE missing on the X server: grabbing 200 times a second,"
                    " changed or not",
                ]
                frame = capture.grab(timeout=5)
                assert pixel(frame, 2, 3) == (0x0A, 0x0B, 0x0C)
                assert capture.grab(timeout=5) is not None  # a timer, not a change, drives it
        finally:
            painter.close()


def test_a_16_bit_screen_is_refused_with_the_reason():
    with xvfb_without(depth=16) as display:
        with pytest.raises(CaptureError, match="unsupported X pixel format") as info:
            X11Capture(display)
    assert info.value.details == ["depth 16, 16 bits per pixel, masks 0xf800/0x7e0/0x1f"]


def test_no_display_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(CaptureError) as info:
        X11Capture()
    assert str(info.value) == NO_DISPLAY == "no X display: set DISPLAY or use --source test"
    assert info.value.hint and info.value.details == ["DISPLAY is not set"]
    with pytest.raises(CaptureError, match=NO_DISPLAY) as info:
        X11Capture(":189")
    assert info.value.details == ["cannot connect to X display ':189'"]


def test_open_close_200_times_leaks_no_segment_and_no_fd(xvfb):
    X11Capture(xvfb.display).close()  # first use opens the libraries
    fds_before = len(os.listdir("/proc/self/fd"))
    segments_before = own_shm_segments()
    for _ in range(200):
        with X11Capture(xvfb.display) as capture:
            assert capture.grab(timeout=5) is not None
    for _ in range(20):  # failing half-way through opening cleans up too
        with pytest.raises(CaptureError):
            X11Capture(xvfb.display, output="nowhere")
    assert own_shm_segments() == segments_before == []
    assert len(os.listdir("/proc/self/fd")) == fds_before


def test_a_frame_kept_past_close_stays_readable(xvfb, painter):
    painter.fill(0, 0, 8, 8, 0x445566)
    capture = X11Capture(xvfb.display)
    frame = capture.grab(timeout=5)
    capture.close()
    capture.close()  # twice is fine
    assert pixel(frame, 4, 4) == (0x44, 0x55, 0x66)
    assert len(own_shm_segments()) == 1
    del frame
    gc.collect()
    assert own_shm_segments() == []
    with pytest.raises(CaptureError, match="the X11 capture is closed"):
        capture.grab(timeout=0)


def test_x_errors_are_recorded_not_fatal(xvfb):
    with X11Capture(xvfb.display) as capture:
        image = xlib.load().x11.XGetImage(capture._display, 0x7FFFFF, 0, 0, 4, 4,
                                          xlib.ALL_PLANES, xlib.ZPIXMAP)
        assert image == ffi.NULL
        errors = xlib.take_errors(capture._display)
        assert len(errors) == 1 and errors[0].startswith("X error 9 (request 73.0")  # BadDrawable
        assert capture.grab(timeout=5) is not None  # the connection is still good


def test_unread_x_errors_do_not_pile_up(xvfb):
    with X11Capture(xvfb.display) as capture:
        x11 = xlib.load().x11
        for _ in range(xlib.MAX_RECORDED_ERRORS + 50):
            x11.XGetImage(capture._display, 0x7FFFFF, 0, 0, 1, 1, xlib.ALL_PLANES, xlib.ZPIXMAP)
        assert len(xlib.take_errors(capture._display)) == xlib.MAX_RECORDED_ERRORS
        assert xlib.take_errors(capture._display) == []


def test_losing_the_x_server_is_an_error_not_an_exit(xvfb_factory):
    server = xvfb_factory(320, 240)
    capture = X11Capture(server.display)
    assert capture.grab(timeout=5) is not None
    server.close()
    with pytest.raises(CaptureError, match=LOST_DISPLAY):
        capture.grab(timeout=5)
    capture.close()


def test_the_pointer_is_drawn_where_it_is(xvfb, painter):
    painter.fill(0, 0, 1280, 720, 0x000000)
    move_pointer(xvfb.display, 300, 200)
    with X11Capture(xvfb.display) as with_cursor, \
            X11Capture(xvfb.display, cursor=False) as without:
        assert "cursor drawn" in with_cursor.describe()
        assert "cursor drawn" not in without.describe()
        drawn = with_cursor.grab(timeout=5).pixels.copy()
        bare = without.grab(timeout=5).pixels
    assert not bare.any()  # the X server leaves the pointer out of its pictures
    # Over black, premultiplied ARGB blends to exactly its own colour bytes.
    libs = xlib.load()
    image = libs.xfixes.XFixesGetCursorImage(painter.display)
    w, h, position = image.width, image.height, (image.x, image.y)
    left, top = image.x - image.xhot, image.y - image.yhot
    argb = np.array([image.pixels[i] & 0xFFFFFFFF for i in range(w * h)], "<u4")
    libs.x11.XFree(image)
    assert position == (300, 200)
    expected = argb.view(np.uint8).reshape(h, w, 4)[..., :3]
    patch = drawn.reshape(720, -1, 4)[top:top + h, left:left + w, :3]
    assert expected.any() and np.array_equal(patch, expected)
    outside = drawn.copy()
    outside.reshape(720, -1, 4)[top:top + h, left:left + w] = 0
    assert not outside[:, : 1280 * 4].any()


def test_moving_the_pointer_over_a_still_screen_wakes_the_grab(xvfb):
    with X11Capture(xvfb.display, fps=1000) as capture:
        capture.grab(timeout=5)
        assert capture.grab(timeout=NOTHING_CHANGES) is None
        move_pointer(xvfb.display, 50 - 640, 60 - 360, relative=True)  # from the centre
        frame = capture.grab(timeout=30)
        assert frame is not None
        lit = np.nonzero(frame.pixels.reshape(720, -1, 4)[..., :3].any(axis=2))
        assert lit[0].min() < 80 and lit[1].min() < 70  # the pointer is now near 50, 60
