"""Codec and presenter cost per frame, at 1280x720 and 1920x1080.

Content: ``pattern_nv12`` (colour bars, a ramp, a square moving 8 px a frame),
60 different frames cycled.

- ``encode-x264-<size>``: one ``VideoEncoder.encode`` (libx264 ultrafast,
  zerolatency, sliced threads) of one NV12 frame.  Named baseline, measured in
  the same run: ``encode-default-<size>``, libx264 as PyAV opens it with no
  options (preset medium, frame threads, B-frames, 40-frame lookahead), timed
  per frame once its pipeline is full.  Also reported: the frame delay of
  each, i.e. how many frames go in before the first packet comes out.
- ``decode-<size>``: one ``VideoDecoder.decode`` of one access unit of that
  stream.
- ``present-sdl-<driver>-<renderer>-<size>``: one ``SdlPresenter.present``
  of a decoded yuv420p frame into a window of the same size: on Xvfb (x11
  driver) with SDL's default renderer (OpenGL, Mesa llvmpipe without a GPU)
  and its software renderer, and on the dummy driver (no screen at all: the
  presenter's own upload and draw).
- Named baseline for decode and present: ``reformat-bgra-<size>``, one
  ``frame.reformat(format="bgra")`` of the same decoded frame - what a
  presenter without a YUV texture would pay on the CPU before any upload.

Run: ``pytest bench/bench_codec.py --benchmark-only``; the summary at the end
lists median and p99 per frame, frame delays, and the ratios.
"""

from __future__ import annotations

import itertools
import os
from fractions import Fraction

import pytest
from av.codec.context import CodecContext
from conftest import XvfbDisplay

from rootstream.decode import open_decoder
from rootstream.encode import open_encoder, pattern_nv12
from rootstream.present import open_presenter

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
BITRATE = {"720p": 10_000_000, "1080p": 20_000_000}
CONTENT_FRAMES = 60

_results: dict[str, tuple[float, float]] = {}
_delays: dict[str, int] = {}
RATIOS = [(f"{kind} {size}", f"{kind}-{subject}-{size}", f"{base}-{size}")
          for size in SIZES
          for kind, subject, base in [("encode", "x264", "encode-default"),
                                      ("decode", "h264", "reformat-bgra"),
                                      ("present", "sdl-x11-opengl", "reformat-bgra"),
                                      ("present", "sdl-x11-software", "reformat-bgra"),
                                      ("present", "sdl-dummy-software", "reformat-bgra")]]


def record(benchmark, name: str) -> None:
    timings = sorted(benchmark.stats.stats.data)
    median = benchmark.stats.stats.median
    p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
    _results[name] = (median, p99)
    benchmark.extra_info.update(median_ms=round(median * 1e3, 3), p99_ms=round(p99 * 1e3, 3))


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not _results:
        return
    with capture.global_and_fixture_disabled():  # shown without -s
        reporter.write_line("")
        reporter.write_line("codec per frame: median / p99")
        for name, (median, p99) in _results.items():
            delay = f"   frame delay {_delays[name]}" if name in _delays else ""
            reporter.write_line(f"  {name:34} {median * 1e3:8.3f} ms / {p99 * 1e3:8.3f} ms{delay}")
        for label, subject, baseline in RATIOS:
            if subject in _results and baseline in _results:
                ratio = _results[subject][0] / _results[baseline][0]
                reporter.write_line(f"  {label}: {subject} / {baseline} = {ratio:.2f}x (median)")


@pytest.fixture(scope="module")
def content():
    return {size: [pattern_nv12(w, h, i) for i in range(CONTENT_FRAMES)]
            for size, (w, h) in SIZES.items()}


@pytest.fixture(scope="module")
def streams(content):
    """Each size encoded once by the streaming encoder: an IDR, then P-frames."""
    out = {}
    for size, (w, h) in SIZES.items():
        with open_encoder("x264", width=w, height=h, bitrate=BITRATE[size]) as encoder:
            out[size] = [encoder.encode(f)[0].data for f in content[size]]
    return out


@pytest.fixture(scope="module")
def decoded(streams):
    out = {}
    for size, units in streams.items():
        decoder = open_decoder("software")
        out[size] = [decoder.decode(u)[0] for u in units[:30]]
    return out


def _frames_before_first_packet(encode, frames) -> int:
    for count, frame in enumerate(itertools.cycle(frames)):
        if encode(frame):
            return count
    raise AssertionError("unreachable")


@pytest.mark.parametrize("size", SIZES)
def test_encode_x264(benchmark, content, size):
    w, h = SIZES[size]
    with open_encoder("x264", width=w, height=h, bitrate=BITRATE[size]) as encoder:
        _delays[f"encode-x264-{size}"] = _frames_before_first_packet(encoder.encode, content[size])
        frames = itertools.cycle(content[size])
        benchmark.group = f"encode-{size}"
        benchmark.pedantic(lambda: encoder.encode(next(frames)), rounds=120, warmup_rounds=5)
    record(benchmark, f"encode-x264-{size}")


@pytest.mark.parametrize("size", SIZES)
def test_encode_default_baseline(benchmark, content, size):
    w, h = SIZES[size]
    ctx = CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = w, h, "nv12"
    ctx.time_base, ctx.framerate = Fraction(1, 60), Fraction(60, 1)
    ctx.bit_rate = BITRATE[size]
    ctx.open()
    pts = itertools.count()

    def encode(frame):
        frame.pts = next(pts)
        frame.pict_type = 0
        return ctx.encode(frame)

    _delays[f"encode-default-{size}"] = _frames_before_first_packet(encode, content[size])
    frames = itertools.cycle(content[size])
    benchmark.group = f"encode-{size}"
    benchmark.pedantic(lambda: encode(next(frames)), rounds=30, warmup_rounds=3)
    record(benchmark, f"encode-default-{size}")


@pytest.mark.parametrize("size", SIZES)
def test_decode(benchmark, streams, size):
    decoder = open_decoder("software")
    units = itertools.cycle(streams[size])  # starts (and restarts) at the IDR
    benchmark.group = f"decode-present-{size}"
    benchmark.pedantic(lambda: decoder.decode(next(units)), rounds=len(streams[size]) * 2)
    record(benchmark, f"decode-h264-{size}")


@pytest.mark.parametrize("size", SIZES)
def test_reformat_baseline(benchmark, decoded, size):
    frames = itertools.cycle(decoded[size])
    benchmark.group = f"decode-present-{size}"
    benchmark.pedantic(lambda: next(frames).reformat(format="bgra"), rounds=120)
    record(benchmark, f"reformat-bgra-{size}")


@pytest.fixture(scope="module")
def display():
    """A 1920x1080 Xvfb of our own, with SDL pointed at it for this module."""
    server = XvfbDisplay(1920, 1080)
    name = server.display
    saved = {k: os.environ.get(k) for k in ("DISPLAY", "SDL_VIDEODRIVER")}
    os.environ.update(DISPLAY=name, SDL_VIDEODRIVER="x11")
    yield name
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.close()


# (SDL_VIDEODRIVER, renderer): x11 on Xvfb with SDL's default renderer and with
# its software one; and the dummy driver, whose "screen" is a no-op, which
# leaves the presenter's own work (texture upload, draw) without the X server.
TARGETS = {"x11-default": ("x11", None), "x11-software": ("x11", "software"),
           "dummy": ("dummy", None)}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("size", SIZES)
def test_present_sdl(benchmark, display, decoded, size, target, monkeypatch):
    w, h = SIZES[size]
    driver, renderer = TARGETS[target]
    monkeypatch.setenv("SDL_VIDEODRIVER", driver)
    with open_presenter("sdl", width=w, height=h, renderer=renderer) as presenter:
        frames = itertools.cycle(decoded[size])
        benchmark.group = f"decode-present-{size}"
        benchmark.pedantic(lambda: presenter.present(next(frames)), rounds=90, warmup_rounds=5)
        benchmark.extra_info["renderer"] = presenter.renderer_name
        name = f"present-sdl-{driver}-{presenter.renderer_name}-{size}"
    record(benchmark, name)
