"""The test pattern backend: numbered frames, pacing, and a marker that survives H.264."""

from __future__ import annotations

import time
from fractions import Fraction

import av
import numpy as np
import pytest

from rootstream.capture.pattern import PatternCapture
from rootstream.errors import CaptureError
from rootstream.marker import MARKER_HEIGHT, Marker, read_marker_bgrx, read_marker_y


def expected_marker(frame) -> Marker:
    return Marker(frame.sequence, (frame.stamps.captured // 1_000_000) & 0xFFFFFFFF)


def test_frames_are_numbered_and_carry_their_number_and_time():
    with PatternCapture(640, 360, fps=1000) as capture:
        for number in range(5):
            frame = capture.grab()
            assert (frame.sequence, frame.width, frame.height) == (number, 640, 360)
            assert frame.stride >= 640 * 4 and frame.pixels.shape == (360, frame.stride)
            assert frame.pixel_format == "BGRX"
            assert read_marker_bgrx(frame.pixels, 640, 360) == expected_marker(frame)


def test_frames_are_windows_into_one_texture_not_copies():
    with PatternCapture(640, 360, fps=1000) as capture:
        first = capture.grab().pixels
        assert np.shares_memory(first, capture.grab().pixels)


def test_no_marker_is_left_behind_in_the_texture():
    """Frame 300 after 299 others is the same picture as frame 300 drawn first:
    every earlier marker was erased, though windows overlap and repeat."""
    worn = PatternCapture(640, 360)
    for number in range(300):
        worn.render(number, 0)
    fresh = PatternCapture(640, 360)
    again = worn.render(300, 5_000_000)[:, :640 * 4]
    assert np.array_equal(again, fresh.render(300, 5_000_000)[:, :640 * 4])
    assert read_marker_bgrx(again, 640, 360) == Marker(300, 5)


def test_every_macroblock_changes_every_frame():
    with PatternCapture(640, 360, fps=1000) as capture:
        a = capture.grab().pixels[:, :640 * 4].copy()
        b = capture.grab().pixels[:, :640 * 4]
    below = slice(MARKER_HEIGHT, 352)  # whole 16-row blocks under the marker
    changed = (a[below] != b[below]).reshape(17, 16, 40, 64).any(axis=(1, 3))
    assert changed.all()


def test_grabs_are_paced_to_the_frame_rate():
    capture = PatternCapture(640, 360, fps=100)
    start = time.monotonic_ns()
    frames = [capture.grab().stamps.captured for _ in range(10)]
    # Lower bounds only: the pattern never runs ahead of its clock.
    assert all(captured >= start + i * 10_000_000 for i, captured in enumerate(frames))


def test_a_late_caller_gets_no_burst():
    capture = PatternCapture(640, 360, fps=50)
    capture.grab()
    time.sleep(0.07)  # three and a half periods late
    second = capture.grab(timeout=0)
    assert second is not None  # the late frame comes at once...
    second_at = second.stamps.captured
    third = capture.grab()
    assert third.stamps.captured - second_at >= 20_000_000  # ...then a full period
    assert third.sequence == second.sequence + 1


def test_timeout_before_the_next_tick_returns_none():
    capture = PatternCapture(640, 360, fps=1)
    assert capture.grab(timeout=0) is not None
    assert capture.grab(timeout=0) is None
    assert capture.grab(timeout=0.01) is None


@pytest.mark.parametrize(("size", "fps", "message"), [
    ((320, 240), 60, "test pattern size is out of range"),
    ((641, 360), 60, "test pattern width and height must be even"),
    ((640, 360), 0, "test pattern frame rate must be between 0 and 1000"),
])
def test_bad_settings_are_clear_errors(size, fps, message):
    with pytest.raises(CaptureError, match=message) as info:
        PatternCapture(*size, fps=fps)
    assert info.value.details


def test_marker_survives_x264_at_2_mbit_720p():
    width, height = 1280, 720
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base, encoder.framerate = Fraction(1, 60), Fraction(60)
    encoder.bit_rate = 2_000_000
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency"}
    decoder = av.CodecContext.create("h264", "r")
    sent: dict[int, Marker] = {}
    read: list[Marker | None] = []

    def decode(packets):
        for packet in packets:
            for picture in decoder.decode(packet):
                plane = picture.planes[0]
                y = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
                read.append(read_marker_y(y, width, height))

    with PatternCapture(width, height, fps=1000) as capture:
        for index in range(60):
            frame = capture.grab()
            sent[frame.sequence] = expected_marker(frame)
            picture = av.VideoFrame.from_ndarray(frame.pixels[:, :width * 4].reshape(
                                                     height, width, 4),
                                                 format="bgra").reformat(format="yuv420p")
            picture.pts = index
            decode(encoder.encode(picture))
    decode(encoder.encode(None))
    assert read == [sent[number] for number in range(60)]
