"""The NV12/I420 converter: every native path bit-identical to the numpy model,
arguments checked, the GIL released, and PyAV frames the encoder accepts."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import warnings
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_convert_reference import COMBOS, coefficients, reference, reference_nv12

from rootstream._native import _nv12
from rootstream.convert import (
    NV12Converter,
    auto_path,
    available_paths,
    color_properties,
    probe_paths,
    to_i420,
    to_nv12,
)
from rootstream.frame import CapturedFrame

PATHS = available_paths()
GUARD = 0xA5  # fills padding and guard bytes: any change is an out-of-bounds write


def random_frame(rng, width, height, pad=0):
    """(height, stride) uint8 pixels with `pad` junk bytes after each row."""
    return rng.integers(0, 256, (height, width * 4 + pad), dtype=np.uint8)


def pixels_of(src, width):
    return src[:, :width * 4].reshape(src.shape[0], width, 4)


def nv12_planes(width, height, y_pad=0, uv_pad=0):
    cw, ch = (width + 1) // 2, (height + 1) // 2
    return (np.full((height, width + y_pad), GUARD, np.uint8),
            np.full((ch, 2 * cw + uv_pad), GUARD, np.uint8))


def run_nv12(src, width, height, y, uv, **options):
    _nv12.nv12(src, width, height, src.strides[0], y, y.strides[0], uv, uv.strides[0], **options)


def assert_nv12(src, width, height, y, uv, pixel_format="BGRX", matrix="bt709",
                full_range=False):
    want_y, want_uv = reference_nv12(pixels_of(src, width), pixel_format, matrix, full_range)
    np.testing.assert_array_equal(y[:, :width], want_y)
    np.testing.assert_array_equal(uv[:, :want_uv.shape[1]], want_uv)
    assert (y[:, width:] == GUARD).all(), "wrote into the Y row padding"
    assert (uv[:, want_uv.shape[1]:] == GUARD).all(), "wrote into the UV row padding"


def test_paths_and_auto_choice():
    assert PATHS[0] == "scalar"
    assert auto_path() == PATHS[-1]
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists() and " avx2 " in cpuinfo.read_text():
        assert auto_path() == "avx2"


def test_probe_paths_lists_every_path_with_a_reason():
    report = probe_paths()
    assert [name for name, _, _ in report] == ["scalar", "sse2", "avx2"]
    assert [name for name, ok, _ in report if ok] == PATHS
    assert [name for name, _, why in report if why == "chosen by auto"] == [auto_path()]
    assert all(why for _, _, why in report)


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
@pytest.mark.parametrize("full_range", [False, True])
def test_native_table_is_the_documented_derivation(matrix, full_range):
    assert _nv12.coefficients(matrix, full_range) == coefficients(matrix, full_range)


# Sizes cover the SIMD block widths (AVX2 32, SSE2 16), their remainders, odd edges.
SIZES = [(1, 1), (2, 2), (1, 5), (3, 1), (7, 3), (8, 2), (15, 4), (16, 1), (17, 9), (33, 7),
         (48, 6), (63, 5), (87, 3), (96, 2)]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("pixel_format,matrix,full_range", COMBOS)
def test_every_path_matches_the_model(path, pixel_format, matrix, full_range):
    rng = np.random.default_rng(zlib.crc32(f"{path}{pixel_format}{matrix}{full_range}".encode()))
    for width, height in SIZES:
        src = random_frame(rng, width, height, pad=12)
        y, uv = nv12_planes(width, height, y_pad=5, uv_pad=3)
        run_nv12(src, width, height, y, uv, pixel_format=pixel_format, matrix=matrix,
                 full_range=full_range, path=path)
        assert_nv12(src, width, height, y, uv, pixel_format, matrix, full_range)


EDGE_LEVELS = np.array([0, 1, 2, 3, 127, 128, 129, 252, 253, 254, 255], np.uint8)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("pixel_format,matrix,full_range", COMBOS)
def test_chroma_at_the_edges_of_its_range(path, pixel_format, matrix, full_range):
    """Blocks built from levels at the ends and the middle of a byte: every
    colour of them as a uniform block (sums 0 and 1020, the full-range chroma
    that clamps from 255.5 to 255), then blocks of four random such pixels.
    The AVX2 path folds the chroma bias into offset words and, in full range,
    rounds after packing (nv12_x86.c); this pins both at their extremes."""
    levels = EDGE_LEVELS
    colours = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    blocks_wide = 64
    rows = -(-len(colours) // blocks_wide)
    uniform = np.zeros((rows * blocks_wide, 4), np.uint8)
    uniform[:len(colours), :3] = colours
    uniform[:, 3] = np.arange(len(uniform)) * 37  # junk in the ignored byte
    # each colour fills a 2x2 block: repeat along x, then duplicate each row
    pixels = np.repeat(uniform.reshape(rows, blocks_wide, 4), 2, axis=1)
    pixels = np.repeat(pixels, 2, axis=0)
    rng = np.random.default_rng(zlib.crc32(f"edges{pixel_format}{matrix}{full_range}".encode()))
    mixed = levels[rng.integers(0, len(levels), (2 * rows, 2 * blocks_wide, 4))]
    for image in (pixels, mixed):
        height, width = image.shape[:2]
        src = np.ascontiguousarray(image).reshape(height, width * 4)
        y, uv = nv12_planes(width, height)
        run_nv12(src, width, height, y, uv, pixel_format=pixel_format, matrix=matrix,
                 full_range=full_range, path=path)
        assert_nv12(src, width, height, y, uv, pixel_format, matrix, full_range)


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
@pytest.mark.parametrize("full_range", [False, True])
def test_luma_of_every_rgb_colour(matrix, full_range):
    """All 2^24 colours, one pixel each of a 4096x4096 frame with junk in the
    X bytes: every path's Y is the formula's, bit for bit.  (Before the shift
    some colours sit exactly on a multiple of 2^15 and others one or two below
    the next, in every matrix and range, so no arithmetic coarser than the
    full 15-bit products, e.g. 16-bit pmulhrsw, could give the same bytes.)"""
    colour = np.arange(1 << 24, dtype=np.uint32)
    src = (colour | ((colour * 7) & 0xFF) << 24).view(np.uint8).reshape(4096, 4096 * 4)
    k = coefficients(matrix, full_range)
    red, green, blue = (colour >> 16).astype(np.int32), (colour >> 8 & 0xFF).astype(np.int32), \
        (colour & 0xFF).astype(np.int32)
    want = ((k["y"][0] * red + k["y"][1] * green + k["y"][2] * blue + k["y_bias"])
            >> k["shift"]).reshape(4096, 4096)
    for path in PATHS:
        y, uv = np.empty((4096, 4096), np.uint8), np.empty((2048, 4096), np.uint8)
        run_nv12(src, 4096, 4096, y, uv, matrix=matrix, full_range=full_range, path=path,
                 threads=0)
        np.testing.assert_array_equal(y, want, err_msg=path)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("threads", [2, 3, 7])
def test_threads_split_rows_identically(path, threads):
    rng = np.random.default_rng(threads)
    for width, height in [(129, 37), (64, 2), (31, 1), (200, 101)]:
        src = random_frame(rng, width, height, pad=4)
        y, uv = nv12_planes(width, height, y_pad=1)
        run_nv12(src, width, height, y, uv, path=path, threads=threads)
        assert_nv12(src, width, height, y, uv)


def test_thread_counts_change_between_calls():
    # The helper pool grows to the largest count asked for; a later, smaller
    # count must still split correctly (extra helpers sit the call out).
    rng = np.random.default_rng(8)
    src = random_frame(rng, 100, 60)
    for threads in (2, 6, 2, 1, 4, 3):
        y, uv = nv12_planes(100, 60)
        run_nv12(src, 100, 60, y, uv, threads=threads)
        assert_nv12(src, 100, 60, y, uv)


def test_back_to_back_conversions_reach_a_spinning_helper():
    """Conversions less than 2 ms apart find the helper spinning, not asleep
    (nv12_pool.c): each must still see its own job, frame after frame."""
    rng = np.random.default_rng(11)
    frames = [(random_frame(rng, w, h), w, h) for w, h in [(96, 40), (130, 23), (64, 64)]]
    for i in range(30):
        src, width, height = frames[i % len(frames)]
        y, uv = nv12_planes(width, height)
        run_nv12(src, width, height, y, uv, threads=2)
        assert_nv12(src, width, height, y, uv)


def test_conversions_at_a_steady_cadence_are_exact():
    """At a steady pace a helper wakes on the clock before each conversion is
    due (nv12_pool.c); conversions that come early, late or on time must each
    still be converted whole, with the job of that call."""
    rng = np.random.default_rng(13)
    frames = [(random_frame(rng, w, h), w, h) for w, h in [(320, 180), (322, 97)]]
    gaps_ms = [5] * 12 + [2.5, 5, 9, 5, 5, 0, 5, 5]  # steady, then early / late / at once
    for i, gap in enumerate(gaps_ms):
        time.sleep(gap / 1000)
        src, width, height = frames[i % len(frames)]
        y, uv = nv12_planes(width, height)
        run_nv12(src, width, height, y, uv, threads=2)
        assert_nv12(src, width, height, y, uv)


def test_helpers_stop_anticipating_when_conversions_stop():
    """After a steady run the helper waits for one more conversion, briefly
    (about 2 ms), then sleeps: a stream that ends leaves no core spinning."""
    rng = np.random.default_rng(14)
    src = random_frame(rng, 96, 40)
    y, uv = nv12_planes(96, 40)
    run_nv12(src, 96, 40, y, uv, threads=2)  # the helper exists
    baseline = cpu_while_idle()
    for _ in range(10):
        time.sleep(0.005)
        run_nv12(src, 96, 40, y, uv, threads=2)
    assert cpu_while_idle() < baseline + 0.06


def cpu_while_idle() -> float:
    """CPU seconds this process uses while its main thread sleeps 0.25 s."""
    before = time.process_time()
    time.sleep(0.25)
    return time.process_time() - before


def test_helpers_sleep_after_a_burst():
    """The helper's spin is bounded (2 ms): an idle process uses no CPU."""
    rng = np.random.default_rng(12)
    src = random_frame(rng, 96, 40)
    y, uv = nv12_planes(96, 40)
    run_nv12(src, 96, 40, y, uv, threads=2)  # the helper exists
    baseline = cpu_while_idle()  # whatever other threads of the process use
    for _ in range(10):  # back to back: the helper spins after each
        run_nv12(src, 96, 40, y, uv, threads=2)
    # An unbounded spin would burn the whole 0.25 s on the helper's core.
    assert cpu_while_idle() < baseline + 0.06


def test_concurrent_conversions_from_python_threads():
    """While one call holds the helper pool, others start their own threads."""
    rng = np.random.default_rng(9)
    sources = [random_frame(rng, 320, 200 + 2 * i) for i in range(4)]
    failures: list[BaseException] = []

    def worker(src):
        try:
            height = src.shape[0]
            for _ in range(15):
                y, uv = nv12_planes(320, height)
                run_nv12(src, 320, height, y, uv, threads=3)
                assert_nv12(src, 320, height, y, uv)
        except BaseException as exc:  # handed to the main thread below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(src,)) for src in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[0]


GUARD_PAGE_SCRIPT = """
import ctypes, mmap, sys
import numpy as np
from rootstream._native import _nv12
page = mmap.PAGESIZE
libc = ctypes.CDLL(None, use_errno=True)
for path in sys.argv[1:]:
    for width in list(range(1, 41)) + [63, 64, 65, 96, 127]:
        for height in (1, 2, 3):
            size = width * 4 * height
            pages = -(-size // page)
            area = mmap.mmap(-1, (pages + 1) * page)
            base = ctypes.addressof(ctypes.c_char.from_buffer(area))
            if libc.mprotect(ctypes.c_void_p(base + pages * page), page, 0) != 0:
                raise OSError(ctypes.get_errno(), "mprotect")
            # the pixels end exactly where the unreadable page begins
            src = np.frombuffer(area, np.uint8, size, pages * page - size)
            src = src.reshape(height, width * 4)
            y = np.empty((height, width), np.uint8)
            uv = np.empty(((height + 1) // 2, 2 * ((width + 1) // 2)), np.uint8)
            _nv12.nv12(src, width, height, width * 4, y, width, uv, uv.shape[1], path=path)
            del src
print("ok")
"""


def test_no_path_reads_past_the_last_pixel():
    """The source ends on a page that cannot be read: a SIMD load past the last
    pixel (a short row's first block, a pipelined load of the next block)
    would kill the process, so the whole sweep runs in a child."""
    child = subprocess.run([sys.executable, "-c", GUARD_PAGE_SCRIPT, *PATHS],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0 and child.stdout.strip() == "ok", child.stderr[-2000:]


def test_a_forked_child_converts_with_threads():
    """After fork() the child has no helper threads; it must start its own."""
    rng = np.random.default_rng(10)
    src = random_frame(rng, 64, 64)
    y, uv = nv12_planes(64, 64)
    run_nv12(src, 64, 64, y, uv, threads=2)  # the parent's pool now exists
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:
        status = 1
        try:
            y2, uv2 = nv12_planes(64, 64)
            run_nv12(src, 64, 64, y2, uv2, threads=2)
            status = 0 if (y2 == y).all() and (uv2 == uv).all() else 2
        finally:
            os._exit(status)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung converting with threads")
    assert os.waitstatus_to_exitcode(status) == 0


def test_auto_threads_on_a_large_frame():
    rng = np.random.default_rng(3)
    src = random_frame(rng, 1280, 723)
    y, uv = nv12_planes(1280, 723)
    run_nv12(src, 1280, 723, y, uv, threads=0, matrix="bt601")
    assert_nv12(src, 1280, 723, y, uv, matrix="bt601")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("pixel_format,matrix,full_range", COMBOS[::3])
def test_i420_matches_the_model(path, pixel_format, matrix, full_range):
    rng = np.random.default_rng(11)
    for width, height in [(1, 1), (17, 9), (40, 6), (35, 13)]:
        src = random_frame(rng, width, height, pad=8)
        cw, ch = (width + 1) // 2, (height + 1) // 2
        y = np.full((height, width + 3), GUARD, np.uint8)
        u = np.full((ch, cw + 1), GUARD, np.uint8)
        v = np.full((ch, cw + 2), GUARD, np.uint8)
        _nv12.i420(src, width, height, src.strides[0], y, y.strides[0], u, u.strides[0], v,
                   v.strides[0], pixel_format=pixel_format, matrix=matrix,
                   full_range=full_range, path=path, threads=2)
        want = reference(pixels_of(src, width), pixel_format, matrix, full_range)
        for got, expected, plane_width in zip((y, u, v), want, (width, cw, cw), strict=True):
            np.testing.assert_array_equal(got[:, :plane_width], expected)
            assert (got[:, plane_width:] == GUARD).all()


@settings(max_examples=60, deadline=None)
@given(width=st.integers(1, 70), height=st.integers(1, 24), src_pad=st.integers(0, 37),
       y_pad=st.integers(0, 9), uv_pad=st.integers(0, 9), path=st.sampled_from(PATHS),
       threads=st.integers(1, 4), combo=st.sampled_from(COMBOS), seed=st.integers(0, 2**16))
def test_any_size_and_strides(width, height, src_pad, y_pad, uv_pad, path, threads, combo, seed):
    pixel_format, matrix, full_range = combo
    src = random_frame(np.random.default_rng(seed), width, height, pad=src_pad)
    y, uv = nv12_planes(width, height, y_pad, uv_pad)
    run_nv12(src, width, height, y, uv, pixel_format=pixel_format, matrix=matrix,
             full_range=full_range, path=path, threads=threads)
    assert_nv12(src, width, height, y, uv, pixel_format, matrix, full_range)


def test_minimal_buffers_need_no_trailing_padding():
    # The last row of each plane needs only its own bytes, not a whole stride.
    width, height, stride = 5, 3, 64
    rng = np.random.default_rng(5)
    full = random_frame(rng, 16, height)  # 64-byte rows
    src = full.reshape(-1)[:stride * (height - 1) + width * 4].copy()
    y = np.full(10 * (height - 1) + width, GUARD, np.uint8)
    uv = np.full(8 + 6, GUARD, np.uint8)
    _nv12.nv12(src, width, height, stride, y, 10, uv, 8)
    want_y, want_uv = reference_nv12(full[:, :width * 4].reshape(height, width, 4))
    got_y = np.stack([y[r * 10:r * 10 + width] for r in range(height)])
    np.testing.assert_array_equal(got_y, want_y)
    np.testing.assert_array_equal(np.stack([uv[0:6], uv[8:14]]), want_uv)


# ----------------------------------------------------------------- arguments

def nv12_args(**change):
    """Valid arguments for an 8x4 conversion, with some replaced."""
    args = {"src": bytearray(128), "width": 8, "height": 4, "src_stride": 32,
            "y": bytearray(32), "y_stride": 8, "uv": bytearray(16), "uv_stride": 8}
    args.update(change)
    return args


BAD_ARGUMENTS = [
    ({"width": 0}, ValueError, "width and height must be between 1 and 32768"),
    ({"height": -3}, ValueError, "width and height must be between 1 and 32768"),
    ({"width": 40000}, ValueError, "width and height must be between 1 and 32768"),
    ({"pixel_format": "XRGB"}, ValueError, "unknown pixel_format 'XRGB'; known: BGRX"),
    ({"matrix": "bt2020"}, ValueError, "unknown matrix 'bt2020'; known: bt601, bt709"),
    ({"path": "neon"}, ValueError, "unknown path 'neon'"),
    ({"threads": -1}, ValueError, "threads must be between 0 (auto) and 64"),
    ({"threads": 65}, ValueError, "threads must be between 0 (auto) and 64"),
    ({"src_stride": 31}, ValueError, "src_stride must be at least 32 bytes, got 31"),
    ({"src_stride": -32}, ValueError, "src_stride must be at least 32 bytes"),
    ({"src": bytearray(127)}, ValueError, "src buffer is too small: 4 rows of 32 bytes at a "
                                          "stride of 32 need 128 bytes, got 127"),
    ({"src_stride": 2**62}, ValueError, "src_stride of 4611686018427387904 bytes is too large"),
    ({"y": bytearray(31)}, ValueError, "y buffer is too small"),
    ({"y_stride": 7}, ValueError, "y_stride must be at least 8 bytes, got 7"),
    ({"uv": bytearray(15)}, ValueError, "uv buffer is too small"),
    ({"uv_stride": 6}, ValueError, "uv_stride must be at least 8 bytes, got 6"),
    ({"width": 7, "uv_stride": 7}, ValueError, "uv_stride must be at least 8 bytes, got 7"),
    ({"src": [0] * 128}, TypeError, "src must be a contiguous buffer, got list"),
    ({"src": None}, TypeError, "src must be a contiguous buffer, got NoneType"),
    ({"y": bytes(32)}, TypeError, "y must be a writable contiguous buffer, got bytes"),
    ({"uv": memoryview(bytearray(16)).toreadonly()}, TypeError,
     "uv must be a writable contiguous buffer, got memoryview"),
    ({"y": np.zeros((4, 16), np.uint8)[:, ::2]}, TypeError,
     "y must be a writable contiguous buffer, got numpy.ndarray"),
    ({"width": "8"}, TypeError, "integer"),
]


@pytest.mark.parametrize("change,error,message", BAD_ARGUMENTS)
def test_bad_arguments_raise_clearly(change, error, message):
    args = nv12_args(**change)
    with pytest.raises(error) as info:
        _nv12.nv12(**args)
    assert message in str(info.value)


def test_overlapping_buffers_are_refused():
    shared = bytearray(32 * 4 + 64)
    view = memoryview(shared)
    with pytest.raises(ValueError, match="src and y buffers overlap"):
        _nv12.nv12(view[:128], 8, 4, 32, view[100:132], 8, view[160:176], 8)
    with pytest.raises(ValueError, match="y and uv buffers overlap"):
        _nv12.nv12(bytes(128), 8, 4, 32, view[0:32], 8, view[16:32], 8)


def test_i420_checks_each_plane():
    src, y = bytes(4 * 4 * 3), bytearray(12)
    with pytest.raises(ValueError, match="u_stride must be at least 2 bytes, got 1"):
        _nv12.i420(src, 4, 3, 16, y, 4, bytearray(4), 1, bytearray(4), 2)
    with pytest.raises(ValueError, match="v buffer is too small"):
        _nv12.i420(src, 4, 3, 16, y, 4, bytearray(4), 2, bytearray(3), 2)


def test_a_refused_call_writes_nothing():
    args = nv12_args(y=bytearray([GUARD]) * 32, uv=bytearray(15))
    with pytest.raises(ValueError):
        _nv12.nv12(**args)
    assert args["y"] == bytearray([GUARD]) * 32


# ----------------------------------------------------------------------- GIL

def test_gil_is_released_during_a_conversion():
    """A Python thread keeps running while one long conversion is in C."""
    # 8K, so that even a fast machine's scalar path takes long enough to tell
    # (4K took 14.6 ms on this project's Zen 3 machine, under the 15 ms floor).
    width, height = 7680, 4320
    src = np.zeros((height, width * 4), np.uint8)
    y, uv = nv12_planes(width, height)
    ticks: list[float] = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.perf_counter())

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        time.sleep(0.01)
        begin = time.perf_counter()
        run_nv12(src, width, height, y, uv, path="scalar", threads=1)  # ~60 ms or more
        end = time.perf_counter()
    finally:
        stop.set()
        ticker.join()
        sys.setswitchinterval(old_interval)
    # Were the GIL held, the ticker would stop for the whole call: one gap as
    # long as the conversion (it may tick briefly after `begin` and, while
    # `end` waits for the GIL, after the call returned).  Released, it ticks on.
    moments = [begin] + [t for t in ticks if begin < t < end] + [end]
    longest_gap = max(b - a for a, b in zip(moments, moments[1:], strict=False))
    assert end - begin > 0.015, "the conversion was too short to tell"
    assert longest_gap < (end - begin) / 2


# ---------------------------------------------------------------- PyAV frames

def plane_rows(plane, rows):
    return np.frombuffer(plane, np.uint8).reshape(rows, plane.line_size)


@pytest.mark.parametrize("width,height", [(64, 48), (99, 37), (1, 1)])
def test_to_nv12_writes_pyav_planes_respecting_line_size(width, height):
    src = random_frame(np.random.default_rng(width), width, height, pad=20)
    frame = av.VideoFrame(width, height, "nv12")
    y_plane, uv_plane = frame.planes
    ch = (height + 1) // 2
    plane_rows(y_plane, height)[:] = GUARD
    plane_rows(uv_plane, ch)[:] = GUARD
    assert to_nv12(src, width, height, out=frame, matrix="bt601", full_range=True) is frame
    y, uv = plane_rows(y_plane, height), plane_rows(uv_plane, ch)
    assert_nv12(src, width, height, y, uv, matrix="bt601", full_range=True)
    assert (frame.colorspace, frame.color_range) == (5, 2)


def test_to_nv12_new_frame_and_numpy_planes():
    width, height = 21, 10
    src = random_frame(np.random.default_rng(1), width, height)
    frame = to_nv12(src, width, height, pixel_format="RGBA")
    assert (frame.format.name, frame.width, frame.height) == ("nv12", width, height)
    assert (frame.colorspace, frame.color_range) == (1, 1)
    y, uv = nv12_planes(width, height, y_pad=3)
    assert to_nv12(src.tobytes(), width, height, pixel_format="RGBA", out=(y, uv)) == (y, uv)
    assert_nv12(src, width, height, y, uv, pixel_format="RGBA")
    np.testing.assert_array_equal(plane_rows(frame.planes[0], height)[:, :width], y[:, :width])


def test_to_nv12_rejects_a_mismatched_out():
    src = bytes(16 * 8 * 4)
    with pytest.raises(ValueError, match="out frame must be nv12 16x8, got yuv420p 16x8"):
        to_nv12(src, 16, 8, out=av.VideoFrame(16, 8, "yuv420p"))
    with pytest.raises(TypeError, match="out must be None, an av.VideoFrame or a tuple of 2"):
        to_nv12(src, 16, 8, out=bytearray(200))
    with pytest.raises(TypeError, match=r"out must hold 2 planes \(y, uv\)"):
        to_nv12(src, 16, 8, out=(np.zeros((8, 16), np.uint8),))
    with pytest.raises(TypeError, match="out uv plane must be a 2-D uint8 numpy array"):
        to_nv12(src, 16, 8, out=(np.zeros((8, 16), np.uint8), bytearray(64)))


@pytest.mark.parametrize("width,height", [(50, 30), (7, 5)])
def test_to_i420_frame_and_planes(width, height):
    src = random_frame(np.random.default_rng(width), width, height, pad=4)
    want = reference(pixels_of(src, width), "BGRX", "bt709", False)
    frame = to_i420(src, width, height)
    assert (frame.format.name, frame.colorspace, frame.color_range) == ("yuv420p", 1, 1)
    cw, ch = (width + 1) // 2, (height + 1) // 2
    for plane, rows, plane_width, expected in zip(frame.planes, (height, ch, ch),
                                                  (width, cw, cw), want, strict=True):
        np.testing.assert_array_equal(plane_rows(plane, rows)[:, :plane_width], expected)
    planes = (np.zeros((height, width), np.uint8), np.zeros((ch, cw), np.uint8),
              np.zeros((ch, cw + 2), np.uint8))
    assert to_i420(src.tobytes(), width, height, src_stride=src.strides[0], out=planes) is planes
    for got, expected in zip(planes, want, strict=True):
        np.testing.assert_array_equal(got[:, :expected.shape[1]], expected)
    with pytest.raises(ValueError, match=f"out frame must be yuv420p {width}x{height}, got nv12"):
        to_i420(src, width, height, out=av.VideoFrame(width, height, "nv12"))


@pytest.mark.parametrize("matrix,full_range", [("bt709", False), ("bt709", True),
                                               ("bt601", False), ("bt601", True)])
def test_solid_colours_agree_with_swscale(matrix, full_range):
    """FFmpeg's own converter, told the same matrix and range, lands within
    one level on flat colours (where no chroma filter can differ): an outside
    check of the matrix, range and byte-order conventions."""
    from av.video.reformatter import ColorRange, Colorspace

    width, height = 32, 16
    colorspace = Colorspace.ITU709 if matrix == "bt709" else Colorspace.ITU601
    color_range = ColorRange.JPEG if full_range else ColorRange.MPEG
    for bgr in [(0, 0, 255), (0, 255, 0), (255, 0, 0), (255, 255, 255), (0, 0, 0),
                (30, 200, 120), (250, 10, 90)]:
        src = np.tile(np.array([*bgr, 0], np.uint8), (height, width)).reshape(height, -1)
        ours = to_nv12(src, width, height, matrix=matrix, full_range=full_range)
        source = av.VideoFrame(width, height, "bgr0")
        plane_rows(source.planes[0], height)[:, :width * 4] = src
        theirs = source.reformat(format="nv12", dst_colorspace=colorspace,
                                 dst_color_range=color_range)
        for index, rows in ((0, height), (1, height // 2)):
            a = plane_rows(ours.planes[index], rows)[:, :width].astype(int)
            b = plane_rows(theirs.planes[index], rows)[:, :width].astype(int)
            assert np.abs(a - b).max() <= 1, (bgr, index)


def captured(pixels, width, height, pixel_format="BGRX", sequence=0):
    return CapturedFrame(pixels=pixels, width=width, height=height, stride=pixels.shape[1],
                         pixel_format=pixel_format, sequence=sequence)


def test_converter_pool_rotates_and_stamps():
    width, height = 34, 18
    rng = np.random.default_rng(2)
    converter = NV12Converter(width, height, "BGRA", pool_size=2)
    assert converter.path == auto_path()
    frames = []
    for sequence in range(3):
        grabbed = captured(random_frame(rng, width, height, pad=8), width, height, "BGRA",
                           sequence)
        before = time.monotonic_ns()
        frame = converter.convert(grabbed)
        assert before <= grabbed.stamps.converted <= time.monotonic_ns()
        y = plane_rows(frame.planes[0], height)
        uv = plane_rows(frame.planes[1], height // 2)
        want_y, want_uv = reference_nv12(pixels_of(grabbed.pixels, width), "BGRA")
        np.testing.assert_array_equal(y[:, :width], want_y)
        np.testing.assert_array_equal(uv[:, :width], want_uv)
        frames.append(frame)
    assert frames[0] is frames[2] and frames[0] is not frames[1]


def test_converter_refuses_other_frames_and_options():
    converter = NV12Converter(16, 8)
    with pytest.raises(ValueError, match="converter is set up for BGRX 16x8, got BGRX 16x10"):
        converter.convert(captured(np.zeros((10, 64), np.uint8), 16, 10))
    with pytest.raises(ValueError, match="unknown pixel_format 'ARGB'"):
        NV12Converter(16, 8, "ARGB")
    with pytest.raises(ValueError, match="unknown matrix 'bt2020'"):
        NV12Converter(16, 8, matrix="bt2020")
    with pytest.raises(ValueError, match="path 'sse4' is not available here"):
        NV12Converter(16, 8, path="sse4")
    for width, height in [(0, 8), (16, -1), (40000, 8)]:
        with pytest.raises(ValueError, match="width and height must be between 1 and 32768"):
            NV12Converter(width, height)


def test_a_pooled_frame_survives_the_next_conversions():
    width, height = 16, 8
    converter = NV12Converter(width, height, pool_size=3)
    first = converter.convert(captured(np.full((height, 64), 255, np.uint8), width, height))
    for _ in range(2):
        converter.convert(captured(np.zeros((height, 64), np.uint8), width, height))
    assert (plane_rows(first.planes[0], height)[:, :width] == 235).all()


def test_a_frame_still_referenced_by_ffmpeg_is_not_overwritten():
    """A filter graph (like an encoder's queue) keeps a reference to a pooled
    frame; converting into that frame again must leave its picture intact."""
    width, height = 16, 8
    converter = NV12Converter(width, height, pool_size=1)
    first = converter.convert(captured(np.full((height, 64), 255, np.uint8), width, height))
    first.time_base = Fraction(1, 60)
    graph = av.filter.Graph()
    source = graph.add_buffer(template=first)
    source.link_to(graph.add("buffersink"))
    graph.configure()
    graph.push(first)  # the graph now holds a reference to first's buffers
    second = converter.convert(captured(np.zeros((height, 64), np.uint8), width, height))
    assert second is first
    held = graph.pull()
    assert (plane_rows(held.planes[0], height)[:, :width] == 235).all()
    assert (plane_rows(second.planes[0], height)[:, :width] == 16).all()


def test_libx264_encodes_converted_frames_with_the_tags():
    """Real libx264 consumes pooled frames; the bitstream says BT.709 limited."""
    width, height = 96, 64
    converter = NV12Converter(width, height, "BGRX")
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "nv12"
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "12"}
    for name, value in converter.color.items():
        setattr(encoder, name, value)
    # A horizontal gradient, moving one pixel per frame.
    ramp = (np.arange(width + 8) * 255 // (width + 7)).astype(np.uint8)
    packets, sources = [], []
    for index in range(6):
        pixels = np.zeros((height, width, 4), np.uint8)
        pixels[:, :, 0] = pixels[:, :, 1] = pixels[:, :, 2] = ramp[index:index + width]
        frame = converter.convert(captured(pixels.reshape(height, -1), width, height))
        frame.pts = index
        sources.append(plane_rows(frame.planes[0], height)[:, :width].copy())
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    decoder = av.CodecContext.create("h264", "r")
    decoded = [f for p in packets for f in decoder.decode(p)] + list(decoder.decode(None))
    assert len(decoded) == 6
    for picture, source in zip(decoded, sources, strict=True):
        assert (picture.colorspace, picture.color_range) == (1, 1)
        luma = plane_rows(picture.planes[0], height)[:, :width].astype(int)
        assert np.abs(luma - source).mean() < 1.5
    assert color_properties() == converter.color
