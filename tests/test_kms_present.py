"""KMS presenter: opening errors, drawing real decoded frames into a pitched buffer.

Drawing runs PyAV's real scaler into a numpy buffer laid out like a dumb
buffer (pitch wider than the picture); the mode setting and page flips need
a display and DRM master, so that path is in the `hardware` test.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from av.video.reformatter import VideoReformatter

from rootstream.errors import PresentError
from rootstream.present.base import Presenter, Rect, letterbox
from rootstream.present.kms import KmsPresenter, draw_frame


def solid_frame(width: int, height: int, rgb: tuple[int, int, int],
                fmt: str = "yuv420p") -> av.VideoFrame:
    """A decoded-looking frame (yuv420p or nv12) of one colour."""
    picture = np.empty((height, width, 3), np.uint8)
    picture[...] = rgb
    return av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format=fmt)


def test_is_a_presenter():
    assert issubclass(KmsPresenter, Presenter) and KmsPresenter.name == "kms"


@pytest.mark.skipif(Path("/dev/dri").exists(), reason="this machine has /dev/dri")
def test_no_dri_directory():
    with pytest.raises(PresentError) as info:
        KmsPresenter(width=1280, height=720)
    assert str(info.value) == "no DRM device: /dev/dri does not exist"
    assert info.value.hint == (
        "KMS needs a GPU with a kernel modesetting driver loaded; or use --present sdl")
    assert KmsPresenter.probe() == (
        "no DRM device: /dev/dri does not exist; "
        "KMS needs a GPU with a kernel modesetting driver loaded")


def test_not_a_drm_device():
    with pytest.raises(PresentError, match="^/dev/null is not a DRM device$"):
        KmsPresenter(width=640, height=360, device="/dev/null")


def test_unknown_mode_policy():
    with pytest.raises(PresentError, match="unknown KMS mode policy 'stretch'"):
        KmsPresenter(width=640, height=360, device="/dev/null", mode="stretch")


@pytest.mark.parametrize("fmt", ["yuv420p", "nv12"])
def test_draw_frame_letterboxes_into_a_pitched_buffer(fmt):
    mode_w, mode_h, pitch = 320, 240, 320 * 4 + 64  # drivers pad pitches
    pixels = np.full((mode_h, pitch), 7, np.uint8)
    frame = solid_frame(160, 90, (200, 40, 10), fmt)  # 16:9 on a 4:3 mode
    box = letterbox(160, 90, mode_w, mode_h)
    assert box == Rect(0, 30, 320, 180)
    painted = draw_frame(VideoReformatter(), frame, pixels, box, None)
    assert painted == box
    picture = pixels[30:210, :320 * 4].reshape(180, 320, 4)
    # BGRX, within limited-range YUV rounding of the original red-ish colour.
    assert np.abs(picture[90, 160, :3].astype(int) - (10, 40, 200)).max() <= 3
    assert np.all(pixels[:30] == 0) and np.all(pixels[210:] == 0)  # the bars
    assert np.all(pixels[:, 320 * 4:] == 0)  # the pitch padding is cleared once too


def test_steady_stream_does_not_repaint_the_bars():
    pixels = np.zeros((240, 320 * 4), np.uint8)
    box = letterbox(160, 90, 320, 240)
    reformatter = VideoReformatter()
    draw_frame(reformatter, solid_frame(160, 90, (0, 0, 0)), pixels, box, None)
    pixels[0, 0] = 99  # a mark in the bar: kept while the box stays put
    draw_frame(reformatter, solid_frame(160, 90, (255, 255, 255)), pixels, box, box)
    assert pixels[0, 0] == 99
    assert pixels[120, 640] > 200
    moved = letterbox(90, 160, 320, 240)  # a portrait stream: the box moves
    draw_frame(reformatter, solid_frame(90, 160, (0, 0, 0)), pixels, moved, box)
    assert pixels[0, 0] == 0


def test_draw_frame_with_an_empty_box_only_clears():
    pixels = np.full((4, 16), 5, np.uint8)
    assert draw_frame(VideoReformatter(), solid_frame(16, 16, (1, 2, 3)), pixels,
                      Rect(0, 0, 0, 0), None) == Rect(0, 0, 0, 0)
    assert not pixels.any()


@pytest.mark.hardware(reason="needs /dev/dri/card* with a connected display and DRM master "
                             "(a text console without a desktop session)")
def test_present_on_real_hardware():
    with KmsPresenter(width=1280, height=720) as presenter:
        for i in range(30):
            shade = 40 + i * 6
            assert presenter.present(solid_frame(1280, 720, (shade, shade, 0))) > 0
        assert presenter.frames_presented + presenter.frames_dropped == 30
        shown = presenter.read_pixels()
        out_w, out_h = presenter.window_size()
        assert shown.shape == (out_h, out_w, 4)
        box = letterbox(1280, 720, out_w, out_h)
        centre = shown[box.y + box.h // 2, box.x + box.w // 2]
        assert centre[2] > 150 and centre[0] < 30  # red and green high, blue low
        assert presenter.poll_events() == [] and presenter.toggle_fullscreen()
        assert presenter.window_to_stream(box.x, box.y) == (0, 0)
    assert presenter.restore_note == ""
