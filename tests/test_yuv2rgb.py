"""rootstream._native._yuv2rgb, the x11 presenter's unscaled yuv420p -> BGRX/RGBX:
hand-computed pixels, every path bit-exact against a numpy copy of the formula
(every SIMD block remainder, odd sizes, padded strides, guard bytes), the
exact real-number conversion within half a level, swscale within its own
error on frames x264 really decoded, the portable build, and the presenter
using it on a real Xvfb."""

from __future__ import annotations

import io
import subprocess
import sys

import av
import numpy as np
import pytest
from av.video.reformatter import Interpolation, VideoReformatter
from test_convert_native import build_portable

from rootstream._native import _yuv2rgb
from rootstream.present.x11 import X11Presenter

PATHS = _yuv2rgb.paths()
KR, KB = 0.2126, 0.0722  # BT.709


def convert(y, u, v, width, height, pixel_format="BGRX", path="auto", dst=None, offset=0,
            stride=None, module=_yuv2rgb):
    stride = stride or width * 4
    if dst is None:
        dst = np.zeros(height * stride, np.uint8)
    module.yuv420_to_rgb32(y, y.shape[1], u, u.shape[1], v, v.shape[1], width, height, dst,
                           stride, dst_offset=offset, pixel_format=pixel_format, path=path)
    return dst


def reference(y, u, v, width, height):
    """The formula of yuv2rgb.h in numpy integers: (height, width, 3) as R, G, B."""
    luma = 9539 * (y[:height, :width].astype(np.int64) - 16) + 4096
    cu = u.astype(np.int64).repeat(2, 0).repeat(2, 1)[:height, :width] - 128
    cv = v.astype(np.int64).repeat(2, 0).repeat(2, 1)[:height, :width] - 128
    rgb = [(luma + 14686 * cv) >> 13, (luma - 1747 * cu - 4366 * cv) >> 13,
           (luma + 17305 * cu) >> 13]
    return np.clip(np.stack(rgb, -1), 0, 255).astype(np.uint8)


def planes(rng, width, height, pad=0):
    cw, ch = (width + 1) // 2, (height + 1) // 2
    return (rng.integers(0, 256, (height, width + pad), np.uint8),
            rng.integers(0, 256, (ch, cw + pad), np.uint8),
            rng.integers(0, 256, (ch, cw + pad), np.uint8))


# Y, U, V -> R, G, B worked out by hand from yuv2rgb.h (L = 9539*(Y-16) + 4096):
HAND = [
    ((16, 128, 128), (0, 0, 0)),  # L = 4096 -> 0
    ((235, 128, 128), (255, 255, 255)),  # L = 2093137, >> 13 = 255
    ((126, 128, 128), (128, 128, 128)),  # L = 1053386, >> 13 = 128
    # BT.709 limited red: L = 452429; R (452429 + 14686*112) >> 13 = 256 -> 255,
    # G (452429 + 1747*26 - 4366*112) >> 13 = 8859 >> 13 = 1, B (452429 - 17305*26) >> 13 = 0
    ((63, 102, 240), (255, 1, 0)),
    # below black: L = 9539*(-16) + 4096 = -148528 -> every channel clamps to 0
    ((0, 128, 128), (0, 0, 0)),
    # Y 100, U 200, V 50: L = 805372; R (805372 - 1145508) >> 13 = -42 -> 0,
    # G (805372 - 125784 + 340548) >> 13 = 124, B (805372 + 1245960) >> 13 = 250
    ((100, 200, 50), (0, 124, 250)),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("pixel_format", ["BGRX", "RGBX"])
def test_hand_computed_pixels(path, pixel_format):
    # 32 pixels of one colour so every SIMD path converts them in full blocks.
    for (yv, uv, vv), (r, g, b) in HAND:
        y = np.full((2, 32), yv, np.uint8)
        u, v = np.full((1, 16), uv, np.uint8), np.full((1, 16), vv, np.uint8)
        pixels = convert(y, u, v, 32, 2, pixel_format, path).reshape(2, 32, 4)
        want = (b, g, r, 255) if pixel_format == "BGRX" else (r, g, b, 255)
        assert np.all(pixels == want), f"YUV {(yv, uv, vv)}: {pixels[0, 0]} != {want}"


@pytest.mark.parametrize("path", PATHS)
def test_every_path_matches_the_formula_at_every_size(path):
    rng = np.random.default_rng(7)
    for width in range(1, 41):
        for height in range(1, 6):
            y, u, v = planes(rng, width, height, pad=3)
            stride, offset = width * 4 + 8, 12  # padded rows, picture not at 0
            size = offset + height * stride + 16
            dst = np.full(size, 0xAB, np.uint8)
            convert(y, u, v, width, height, "RGBX", path, dst, offset, stride)
            rows = dst[offset:offset + height * stride].reshape(height, stride)
            np.testing.assert_array_equal(rows[:, :width * 4].reshape(height, width, 4)[..., :3],
                                          reference(y, u, v, width, height),
                                          err_msg=f"{width}x{height}")
            assert np.all(rows[:, :width * 4].reshape(height, width, 4)[..., 3] == 255)
            # Nothing outside the picture is written: the guard bytes are intact.
            assert np.all(dst[:offset] == 0xAB) and np.all(rows[:, width * 4:] == 0xAB)
            assert np.all(dst[offset + height * stride:] == 0xAB)


def exact_rgb(y, u, v):
    """The real-number BT.709 limited -> full conversion, clipped: R, G, B floats."""
    luma = (y.astype(float) - 16) * 255 / 219
    cb, cr = (u.astype(float) - 128) * 255 / 224, (v.astype(float) - 128) * 255 / 224
    r, b = luma + 2 * (1 - KR) * cr, luma + 2 * (1 - KB) * cb
    g = (luma - KR * r - KB * b) / (1 - KR - KB)
    return np.clip(np.stack([r, g, b], -1), 0, 255)


def test_within_half_a_level_of_the_exact_conversion():
    # Every Y against a grid of chroma: each 2x2 block is one (U, V), Y varies inside.
    levels = np.arange(0, 256, 3, dtype=np.uint8)
    cu, cv = np.meshgrid(levels, levels, indexing="ij")
    u, v = cu.reshape(1, -1), cv.reshape(1, -1)  # one chroma row, 86*86 samples
    width = u.shape[1] * 2
    for base in range(0, 256, 2):
        y = np.full((2, width), base, np.uint8)
        y[1] = min(base + 1, 255)
        got = convert(y, u, v, width, 2).reshape(2, width, 4)[..., 2::-1]  # BGRX -> RGB
        want = exact_rgb(y, u.repeat(2, 1).repeat(2, 0), v.repeat(2, 1).repeat(2, 0))
        assert np.abs(got - want).max() <= 0.52, f"Y {base}"


def decoded_frames(width=640, height=360, count=4):
    """Frames x264 encoded and FFmpeg decoded, as the client gets them."""
    out = io.BytesIO()
    with av.open(out, "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        rows, cols = np.mgrid[0:height, 0:width]
        for i in range(count):
            rgb = np.stack([(cols + 20 * i) % 256, rows * 255 // height, (cols + rows) * 3 % 256],
                           -1).astype(np.uint8)
            rgb[100:200, 100:300] = np.random.default_rng(i).integers(0, 256, (100, 200, 3))
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out.seek(0)
    with av.open(out) as container:
        return list(container.decode(video=0))


def test_swscale_agrees_on_decoded_frames():
    """swscale (what the presenter used before) within 3 levels: its SIMD
    yuv2rgb is up to 2.96 levels from the exact conversion on these frames,
    ours at most 0.52, so 3 is swscale's own error, not ours."""
    frames = decoded_frames()
    assert len(frames) == 4 and frames[0].format.name == "yuv420p"
    reformatter = VideoReformatter()
    for frame in frames:
        w, h = frame.width, frame.height
        scaled = reformatter.reformat(frame, w, h, "bgr0", src_colorspace="ITU709",
                                      src_color_range="MPEG", dst_color_range="JPEG",
                                      interpolation=Interpolation.FAST_BILINEAR)
        plane = scaled.planes[0]
        theirs = np.frombuffer(plane, np.uint8).reshape(h, plane.line_size)[:, :w * 4]
        y, u, v = frame.planes
        ours = np.zeros((h, w * 4), np.uint8)
        _yuv2rgb.yuv420_to_rgb32(y, y.line_size, u, u.line_size, v, v.line_size, w, h, ours,
                                 w * 4)
        diff = np.abs(ours.reshape(h, w, 4)[..., :3].astype(int) -
                      theirs.reshape(h, w, 4)[..., :3])
        assert diff.max() <= 3 and (diff <= 2).mean() > 0.98


def test_bad_arguments_are_value_errors():
    y, u, v = planes(np.random.default_rng(1), 16, 4)
    dst = np.zeros(16 * 4 * 4, np.uint8)
    with pytest.raises(ValueError, match="dst buffer"):
        convert(y, u, v, 16, 4, dst=dst[:-1])
    with pytest.raises(ValueError, match="dst buffer"):
        convert(y, u, v, 16, 4, dst=dst, offset=4)
    with pytest.raises(ValueError, match="u buffer"):
        convert(y, u[:1], v, 16, 4)
    with pytest.raises(ValueError, match="y stride"):
        _yuv2rgb.yuv420_to_rgb32(y, 8, u, 8, v, 8, 16, 4, dst, 64)
    with pytest.raises(ValueError, match="outside"):
        convert(y, u, v, 0, 4)
    with pytest.raises(ValueError, match="pixel_format"):
        convert(y, u, v, 16, 4, pixel_format="XRGB")
    with pytest.raises(ValueError, match="unknown path"):
        convert(y, u, v, 16, 4, path="neon")
    with pytest.raises((TypeError, BufferError)):  # read-only destination
        convert(y, u, v, 16, 4, dst=bytes(dst.size))


def test_portable_build_without_simd(tmp_path):
    """The extension as a non-x86 machine builds it: the scalar path only."""
    portable = build_portable(tmp_path, "_yuv2rgb", ["yuv2rgb_module.c", "yuv2rgb_scalar.c",
                                                     "yuv2rgb_x86.c"], "YUV2RGB_NO_SIMD")
    assert portable.paths() == ["scalar"] and portable.auto_path() == "scalar"
    y, u, v = planes(np.random.default_rng(3), 37, 5)
    got = convert(y, u, v, 37, 5, "RGBX", module=portable).reshape(5, 37, 4)[..., :3]
    np.testing.assert_array_equal(got, reference(y, u, v, 37, 5))


def test_the_x11_presenter_converts_equal_sizes_natively(xvfb):
    """At window size the window holds exactly this module's pixels (swscale's
    differ by up to 3 levels on noise, so this fails on the old path)."""
    w, h = 320, 180
    y, u, v = planes(np.random.default_rng(5), w, h)
    frame = av.VideoFrame(w, h, "yuv420p")
    for plane, data in zip(frame.planes, (y, u, v), strict=True):
        rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
        rows[:data.shape[0], :data.shape[1]] = data
    with X11Presenter(width=w, height=h, display=xvfb.display) as presenter:
        presenter.present(frame)
        shown = presenter.read_pixels()
    want = convert(y, u, v, w, h, "BGRX").reshape(h, w, 4)
    np.testing.assert_array_equal(shown[..., :3], want[..., :3])


# Every plane ends where a page that may not be read begins, so a read one
# byte past any plane kills the process.  Run in a child: a crash is a failure.
GUARDED = r"""
import ctypes, mmap, sys
import numpy as np
from rootstream._native import _yuv2rgb

libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
keep = []

def guarded(size, fill):
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    area = mmap.mmap(-1, (pages + 1) * mmap.PAGESIZE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(area))
    assert libc.mprotect(base + pages * mmap.PAGESIZE, mmap.PAGESIZE, 0) == 0
    keep.append(area)
    start = pages * mmap.PAGESIZE - size
    view = np.frombuffer(area, np.uint8, count=size, offset=start)
    view[:] = fill
    return view

for path in _yuv2rgb.paths():
    for width in range(1, 41):
        for height in (1, 2, 3):
            cw, ch = (width + 1) // 2, (height + 1) // 2
            y, u, v = guarded(width * height, 100), guarded(cw * ch, 90), guarded(cw * ch, 160)
            dst = guarded(width * height * 4, 0)
            _yuv2rgb.yuv420_to_rgb32(y, width, u, cw, v, cw, width, height, dst, width * 4,
                                     path=path)
print("ok")
"""


def test_no_read_or_write_past_exact_planes():
    result = subprocess.run([sys.executable, "-c", GUARDED], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", (
        f"exit {result.returncode}: {result.stderr[-2000:]}")
