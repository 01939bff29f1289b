"""Capture cost per frame: X11 MIT-SHM against XGetImage, and the test pattern.

- ``x11-grab-1080p``: one grab of a 1920x1080 Xvfb screen.  The named
  baseline, measured in the same run on the same server, is XGetImage (the
  pixels cross the X socket, then one copy into our buffer), which is what the
  backend falls back to without MIT-SHM.  Timer mode (no XDAMAGE) at 1000 fps,
  so every call grabs and the pacer never sleeps once a grab takes over 1 ms.
  Both without the pointer; ``mit-shm+cursor`` adds drawing it in (the
  default), to show what that costs.
- ``x11-damage-wake``: a small draw by another client, then the grab it
  wakes (draw round trip + damage event + MIT-SHM grab): the capture share of
  glass-to-glass latency on a changing screen.
- ``pattern-render-720p`` / ``-1080p``: drawing one test-pattern frame into
  the reused buffer, against the floor for that: one plain copy of a frame of
  the same size (``np.copyto``).
- ``marker-read``: reading the marker from a decoded 720p luma plane, the
  client's per-frame cost.

Run: ``pytest bench/bench_capture.py --benchmark-only``; the summary at the
end lists median and p99 per frame and the ratios against each baseline.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import XvfbDisplay

from rootstream._native import xlib
from rootstream._native.xlib import ffi
from rootstream.capture.pattern import PatternCapture
from rootstream.capture.x11 import X11Capture
from rootstream.marker import draw_marker, read_marker_y

RATIOS = [
    ("x11 grab 1080p", "mit-shm", "xgetimage"),
    ("x11 grab 1080p, pointer drawn", "mit-shm+cursor", "mit-shm"),
    ("pattern render 720p", "pattern-720p", "copy-720p"),
    ("pattern render 1080p", "pattern-1080p", "copy-1080p"),
]


@pytest.fixture(scope="module")
def screen_1080p():
    """A 1920x1080 Xvfb of our own (bench/conftest.py picks a free display)."""
    with XvfbDisplay(1920, 1080) as server:
        yield server.display


def summary_lines(results) -> list[str]:
    """Printed by bench/conftest.py's ``bench_summary`` after the module's last case."""
    by_name = {key[0]: times for key, times in results.items()}
    lines = ["", "capture per frame: median / p99"]
    lines += [f"  {name:16} {median * 1e3:8.3f} ms / {p99 * 1e3:8.3f} ms"
              for name, (median, p99) in by_name.items()]
    lines += [f"  {label}: {subject} takes {by_name[subject][0] / by_name[baseline][0]:.2f}x"
              f" the median of {baseline}"
              for label, subject, baseline in RATIOS
              if subject in by_name and baseline in by_name]
    return lines


@pytest.mark.parametrize("method", ["mit-shm", "mit-shm+cursor", "xgetimage"])
def test_x11_grab_1080p(benchmark, bench_summary, screen_1080p, method):
    benchmark.group = "x11-grab-1080p"
    shm = method.startswith("mit-shm")
    with X11Capture(screen_1080p, fps=1000, use_damage=False, use_shm=shm,
                    cursor=method.endswith("+cursor")) as capture:
        assert ("via MIT-SHM" in capture.describe()) == shm
        frame = benchmark(capture.grab, timeout=5)
        assert (frame.width, frame.height) == (1920, 1080)
    bench_summary.record(benchmark, method)


def test_x11_damage_wake(benchmark, bench_summary, screen_1080p):
    benchmark.group = "x11-damage-wake"
    libs = xlib.load()
    painter = libs.x11.XOpenDisplay(screen_1080p.encode())
    assert painter != ffi.NULL, f"cannot open {screen_1080p} for drawing"
    root = libs.x11.XRootWindow(painter, 0)
    gc = libs.x11.XCreateGC(painter, root, 0, ffi.NULL)
    colours = itertools.cycle([0xFF0000, 0x00FF00])
    capture = X11Capture(screen_1080p, fps=1000)
    capture.grab(timeout=5)

    def draw_then_grab():
        libs.x11.XSetForeground(painter, gc, next(colours))
        libs.x11.XFillRectangle(painter, root, gc, 10, 10, 32, 32)
        libs.x11.XSync(painter, False)
        return capture.grab(timeout=5)

    try:
        assert benchmark(draw_then_grab) is not None
    finally:
        capture.close()
        libs.x11.XFreeGC(painter, gc)
        libs.x11.XCloseDisplay(painter)
    bench_summary.record(benchmark, "damage-wake")


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)], ids=["720p", "1080p"])
@pytest.mark.parametrize("what", ["pattern", "copy"])
def test_pattern_render(benchmark, bench_summary, size, what):
    width, height = size
    name = f"{what}-{height}p"
    benchmark.group = f"pattern-render-{height}p"
    numbers = itertools.count()
    if what == "pattern":
        pattern = PatternCapture(width, height)
        benchmark(lambda: pattern.render(next(numbers), 0))
    else:
        source = np.full((height, width * 4), 7, np.uint8)
        target = np.empty_like(source)
        benchmark(np.copyto, target, source)
    bench_summary.record(benchmark, name)


def test_marker_read_720p(benchmark, bench_summary):
    benchmark.group = "marker-read"
    pixels = np.zeros((720, 1280 * 4), np.uint8)
    draw_marker(pixels, 1280, 720, 1, 2)
    luma = np.ascontiguousarray(pixels.reshape(720, 1280, 4)[..., 1])
    assert benchmark(read_marker_y, luma, 1280, 720) is not None
    bench_summary.record(benchmark, "marker-read")
