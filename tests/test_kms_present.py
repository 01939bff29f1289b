"""KMS presenter: opening errors, drawing real decoded frames into a pitched buffer.

Drawing runs PyAV's real scaler into a numpy buffer laid out like a dumb
buffer (pitch wider than the picture); the mode setting and page flips need
a display and DRM master, so that path is in the `kms` test (in the VM).
"""

from __future__ import annotations

import runpy
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


# --- the whole path over recorded replies ---------------------------------

# tests/ is not a package: the shared replay card is loaded by path.
ReplayCard = runpy.run_path(str(Path(__file__).parent / "data" / "drm" / "replay.py"))["ReplayCard"]


def test_open_present_close_over_recorded_replies():
    card = ReplayCard(pitch_padding=64)
    presenter = KmsPresenter(width=1280, height=720, device=card)
    assert presenter.describe() == "HDMI-A-1 CRTC 51 1280x720@60.00"
    assert presenter.window_size() == (1280, 720)
    first_fb, second_fb = sorted(card.framebuffers)
    assert card.crtc_sets == [(51, first_fb, 0, 0, [95], "1280x720@60.00")]
    for shade in (50, 100, 150):
        assert presenter.present(solid_frame(1280, 720, (shade, shade, shade))) > 0
    # Double buffering: each flip shows the buffer drawn while the other was on screen.
    assert card.flips == [(51, second_fb), (51, first_fb), (51, second_fb)]
    assert presenter.frames_presented == 3
    shown = presenter.read_pixels()
    assert shown.shape == (720, 1280, 4) and abs(int(shown[360, 640, 1]) - 150) <= 3
    # The buffer on screen, read back from its memory: pitch padding untouched.
    _, _, handle, pitch = card.framebuffers[second_fb]
    raw = np.frombuffer(card.read(handle, pitch * 720), np.uint8).reshape(720, pitch)
    assert pitch == 1280 * 4 + 64 and not raw[:, 1280 * 4:].any()
    assert np.array_equal(raw[:, :1280 * 4].reshape(720, 1280, 4), shown)
    presenter.close()
    presenter.close()  # twice is fine
    assert card.crtc_sets[-1] == (51, 84, 0, 0, [95], "1920x1080@60.00")  # as it was
    assert card.framebuffers == {} and len(card.dumb_destroyed) == 2
    assert card.fd == -1 and presenter.restore_note == ""


def test_letterbox_and_mouse_mapping_on_the_current_mode():
    card = ReplayCard()
    with KmsPresenter(width=640, height=480, device=card, mode="current") as presenter:
        assert presenter.window_size() == (1920, 1080)
        presenter.present(solid_frame(640, 480, (255, 255, 255)))
        shown = presenter.read_pixels()
        box = letterbox(640, 480, 1920, 1080)
        assert box == Rect(240, 0, 1440, 1080)
        assert not shown[:, :240].any() and not shown[:, 1680:].any()  # black pillars
        assert shown[540, 960, 0] > 240
        assert presenter.window_to_stream(960, 540) == (320, 240)
        assert presenter.window_to_stream(100, 540) is None  # on a bar


def test_a_desktop_session_holding_the_display():
    card = ReplayCard()
    card.not_master = True
    with pytest.raises(PresentError) as info:
        KmsPresenter(width=1280, height=720, device=card)
    assert str(info.value) == "cannot set the display mode: another program is the DRM master"
    assert "text console" in info.value.hint and info.value.hint.endswith("--present sdl")
    # Nothing was changed, so nothing is restored; the buffers are freed.
    assert card.crtc_sets == [] and card.framebuffers == {} and len(card.dumb_destroyed) == 2
    assert card.fd == -1


def test_a_refused_flip_drops_the_frame():
    card = ReplayCard()
    with KmsPresenter(width=1280, height=720, device=card) as presenter:
        card.flip_busy = True
        presenter.present(solid_frame(1280, 720, (0, 0, 0)))
        assert (presenter.frames_presented, presenter.frames_dropped) == (0, 1)
        presenter.present(solid_frame(1280, 720, (0, 0, 0)))
        assert (presenter.frames_presented, presenter.frames_dropped) == (1, 1)
        assert presenter.poll_events() == [] and presenter.toggle_fullscreen() is True


@pytest.mark.kms
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
