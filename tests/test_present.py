"""Presenter geometry, the null presenter and the factory (no window needed)."""

from __future__ import annotations

import av
import numpy as np
import pytest

from rootstream.errors import PresentError
from rootstream.present import (
    AUTO_ORDER,
    PRESENTERS,
    Rect,
    letterbox,
    map_to_stream,
    open_presenter,
    probe_presenters,
)

QUADRANTS_RGB = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (220, 220, 220)]  # TL TR BL BR


def quadrant_frame(width: int, height: int, fmt: str = "nv12") -> av.VideoFrame:
    """Four flat colour quadrants, converted as the host does (BT.709, limited)."""
    rgb = np.empty((height, width, 3), np.uint8)
    hw, hh = width // 2, height // 2
    rgb[:hh, :hw], rgb[:hh, hw:], rgb[hh:, :hw], rgb[hh:, hw:] = QUADRANTS_RGB
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format=fmt, dst_colorspace=av.video.reformatter.Colorspace.ITU709,
        dst_color_range=av.video.reformatter.ColorRange.MPEG)


@pytest.mark.parametrize("stream, out, expected", [
    ((1280, 720), (1280, 720), Rect(0, 0, 1280, 720)),  # same size
    ((1280, 720), (640, 360), Rect(0, 0, 640, 360)),  # same aspect, smaller
    ((640, 360), (800, 300), Rect(133, 0, 533, 300)),  # wider window: bars left/right
    ((640, 360), (400, 600), Rect(0, 187, 400, 225)),  # taller window: bars top/bottom
    ((1920, 1080), (1280, 1024), Rect(0, 152, 1280, 720)),
    ((640, 480), (0, 100), Rect(0, 0, 0, 0)),  # minimised window
])
def test_letterbox(stream, out, expected):
    assert letterbox(*stream, *out) == expected


def test_map_to_stream_through_the_bars():
    # 640x360 stream in an 800x300 window: picture at x 133..665, full height.
    assert map_to_stream(5, 150, 640, 360, 800, 300) is None
    assert map_to_stream(799, 150, 640, 360, 800, 300) is None
    assert map_to_stream(133, 0, 640, 360, 800, 300) == (0, 0)
    assert map_to_stream(665, 299, 640, 360, 800, 300) == (639, 359)
    assert map_to_stream(399.5, 150, 640, 360, 800, 300) == (320, 180)
    assert map_to_stream(-1, -1, 640, 360, 640, 360) is None


def test_null_presenter_counts_and_keeps_the_last_frame():
    presenter = open_presenter("null", width=64, height=32)
    assert presenter.read_pixels().shape == (32, 64, 4)
    first = quadrant_frame(64, 32)
    stamp = presenter.present(first)
    presenter.present(quadrant_frame(128, 64, "yuv420p"))
    assert stamp > 0 and presenter.frames_presented == 2
    assert (presenter.width, presenter.height) == (128, 64)
    pixels = presenter.read_pixels()
    assert pixels.shape == (64, 128, 4)
    bgr = pixels[16, 32, :3].astype(int)
    assert np.abs(bgr - QUADRANTS_RGB[0][::-1]).max() < 16
    assert presenter.window_to_stream(127, 63) == (127, 63)
    assert presenter.window_to_stream(128, 0) is None
    assert presenter.poll_events() == []
    assert presenter.toggle_fullscreen() is True
    presenter.close()


def test_unknown_presenter_lists_the_known_ones():
    with pytest.raises(PresentError) as caught:
        open_presenter("vulkan", width=64, height=64)
    assert "sdl, kms, null" in caught.value.details[0]


def test_auto_never_picks_null_and_kms_is_in_the_table():
    assert "null" not in AUTO_ORDER and AUTO_ORDER[0] == "sdl"
    assert PRESENTERS["kms"] == "rootstream.present.kms:KmsPresenter"


def test_probe_lists_every_presenter():
    probes = {p.name: p for p in probe_presenters()}
    assert list(probes) == list(PRESENTERS)
    assert probes["null"].ok
    assert all(p.reason for p in probes.values())
