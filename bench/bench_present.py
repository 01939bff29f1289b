"""Present cost per frame on Xvfb: the x11 presenter against the SDL presenter.

One 1920x1080 Xvfb for the whole module; every presenter opens a window of
the stream's size on it and shows the same decoded-like NV12 frame (a
gradient with detail, BT.709 limited range) over and over.  The figure is the
steady-state cost of ``present()`` as the client loop pays it: for ``x11``
that includes waiting for the server's ShmCompletion of the segment put two
frames earlier, so the server's copy is in the figure, not hidden behind it.

- ``sdl``: the named baseline, SDL's default renderer (OpenGL on Mesa's
  llvmpipe on Xvfb), what ``--present auto`` picks;
- ``sdl-software``: SDL's software renderer;
- ``x11``: MIT-SHM, swscale NV12 -> BGRX into the segment;
- ``x11-xputimage``: the same without MIT-SHM (pixels through the socket);
- ``x11-scaled``: a 720p stream in a 1920x1080 window (swscale scales too).

And swscale alone (``test_swscale``), NV12 -> BGRX through a reused
``VideoReformatter``, per interpolation and thread count, to choose the
presenter's: equal sizes (the usual case) and 720p scaled up to 1080p.

Run: ``pytest bench/bench_present.py --benchmark-only``; the summary lists
median and p99 per frame and the ratios against ``sdl`` of the same size.
"""

from __future__ import annotations

import os
import shutil

import av
import numpy as np
import pytest
from av.video.reformatter import Interpolation, VideoReformatter
from conftest import XvfbDisplay

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
PRESENTERS = ["sdl", "sdl-software", "x11", "x11-xputimage"]

pytestmark = pytest.mark.skipif(shutil.which("Xvfb") is None,
                                reason="Xvfb missing (apt-get install xvfb)")


@pytest.fixture(scope="module")
def screen(request):
    server = XvfbDisplay(1920, 1080)
    saved = {name: os.environ.get(name) for name in ("DISPLAY", "SDL_VIDEODRIVER")}
    os.environ.update(DISPLAY=server.display, SDL_VIDEODRIVER="x11")
    yield server.display
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    server.close()


def decoded_like(width: int, height: int) -> av.VideoFrame:
    """An NV12 frame with gradients and fine detail, as a decoder hands it over."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([(x * 255 // width), (y * 255 // height), ((x ^ y) & 0xFF)],
                   axis=-1).astype(np.uint8)
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="nv12", dst_colorspace="ITU709", dst_color_range="MPEG")


def open_one(kind: str, width: int, height: int, display: str):
    if kind.startswith("sdl"):
        from rootstream.present.sdl import SdlPresenter

        presenter = SdlPresenter(width=width, height=height,
                                 renderer="software" if kind == "sdl-software" else None)
        return presenter, f"{presenter.video_driver}/{presenter.renderer_name}"
    from rootstream.present.x11 import X11Presenter

    window = (1920, 1080) if kind == "x11-scaled" else None
    presenter = X11Presenter(width=width, height=height, display=display,
                             use_shm=kind != "x11-xputimage")
    if window:
        presenter.set_window_size(*window)
        deadline = 200
        while presenter.window_size() != window and deadline:
            presenter.poll_events()
            deadline -= 1
    return presenter, presenter.describe()


def summary_lines(results) -> list[str]:
    lines = ["", "present per frame on Xvfb (window = stream size), and swscale alone:"
                 " median / p99"]
    width = max(len(kind) for kind, *_ in results)
    for (kind, size, how), (median, p99) in results.items():
        lines.append(f"  {kind:{width}} {size:13} {median * 1e3:7.2f} ms / {p99 * 1e3:7.2f} ms"
                     f"   ({how})")
    medians = {(kind, size): times[0] for (kind, size, _), times in results.items()
               if not kind.startswith("swscale")}
    for (kind, size), median in medians.items():
        baseline = medians.get(("sdl", size))
        if kind != "sdl" and baseline:
            lines.append(f"  {kind} {size}: {median / baseline:.2f}x the median of sdl")
    return lines


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("kind", [*PRESENTERS, "x11-scaled"])
def test_present(benchmark, bench_summary, screen, kind, size):
    if kind == "x11-scaled" and size != "720p":
        pytest.skip("a 720p stream scaled to the 1080p screen only")
    width, height = SIZES[size]
    benchmark.group = f"present-{size}"
    frame = decoded_like(width, height)
    presenter, how = open_one(kind, width, height, screen)
    try:
        for _ in range(5):  # textures, swscale contexts and segments made
            presenter.present(frame)

        def one():
            presenter.present(frame)
            presenter.poll_events()

        benchmark.pedantic(one, rounds=200, iterations=1, warmup_rounds=5)
        # Proof it showed the picture: the middle pixel has the frame's colour.
        pixels = presenter.read_pixels()
        h, w = pixels.shape[:2]
        assert pixels[h // 2, w // 2, :3].any()
    finally:
        presenter.close()
    bench_summary.record(benchmark, kind, size, how)


@pytest.mark.parametrize("threads", [1, 0], ids=["1-thread", "auto-threads"])
@pytest.mark.parametrize("interpolation", ["FAST_BILINEAR", "POINT", "BILINEAR"])
@pytest.mark.parametrize("scale", ["720p", "1080p", "720p-to-1080p"])
def test_swscale(benchmark, bench_summary, scale, interpolation, threads):
    benchmark.group = f"swscale-{scale}"
    source = SIZES[scale.split("-")[0]]
    target = SIZES[scale.split("-")[-1]]
    frame = decoded_like(*source)
    reformatter = VideoReformatter()

    def one():
        return reformatter.reformat(frame, *target, "bgr0", src_colorspace="ITU709",
                                    src_color_range="MPEG", dst_color_range="JPEG",
                                    interpolation=Interpolation[interpolation],
                                    threads=threads)

    out = benchmark.pedantic(one, rounds=100, iterations=1, warmup_rounds=3)
    assert (out.width, out.height) == target
    bench_summary.record(benchmark, f"swscale {interpolation} threads={threads or 'auto'}",
                         scale, "NV12 -> BGRX")
