"""KMS capture and presentation against a real kernel driver (vkms, in the VM).

Every check is on pixels: the tests' own DRM master (kms_scanout.py) scans
out pictures it drew, and capture must return exactly those bytes, follow
page flips to the new framebuffer, and composite the cursor plane where it
is; presentation must put the frame's exact pixels on screen (read back
through GETFB2 + PRIME) and give the display back as it found it.
"""

from __future__ import annotations

import av
import numpy as np
import pytest
from kms_scanout import DRM_FORMAT_ARGB8888, Scanout, pattern, shown_pixels, vkms_card

from rootstream._native.drm_abi import (
    DRM_EVENT_FLIP_COMPLETE,
    DRM_FORMAT_MOD_LINEAR,
    DRM_MODE_PAGE_FLIP_EVENT,
)
from rootstream.capture.kms import KmsCapture
from rootstream.present.kms import KmsPresenter

pytestmark = pytest.mark.kms


@pytest.fixture
def card() -> str:
    return vkms_card()


@pytest.fixture
def scanout(card):
    with Scanout(card) as master:
        yield master


def picture_of(frame) -> np.ndarray:
    """A captured frame's pixels as (h, w, 4), without the row padding."""
    return frame.pixels[:, :frame.width * 4].reshape(frame.height, frame.width, 4)


def test_a_dumb_framebuffer_reports_a_linear_modifier(scanout):
    buf = scanout.buffer(pattern(64, 64, 0))
    fb = scanout.card.getfb2(buf.fb_id)
    # vkms supports modifiers, so GETFB2 sets DRM_MODE_FB_MODIFIERS and says
    # LINEAR itself: nothing is assumed.
    assert fb.modifier == DRM_FORMAT_MOD_LINEAR
    for handle in {h for h in fb.handles if h}:
        scanout.card.gem_close(handle)


def test_capture_returns_the_scanned_out_pixels_through_page_flips(card, scanout):
    width, height = scanout.mode.width, scanout.mode.height
    pictures = [pattern(width, height, seed) for seed in (1, 2)]
    first, second = (scanout.buffer(p) for p in pictures)
    scanout.show(first)
    with KmsCapture(device=card, fps=1000, cursor=False) as capture:
        assert (capture.width, capture.height, capture.pixel_format) == (width, height, "BGRX")
        assert np.array_equal(picture_of(capture.grab(timeout=2.0)), pictures[0])
        scanout.flip(second)
        assert np.array_equal(picture_of(capture.grab(timeout=2.0)), pictures[1])
        scanout.flip(first)
        frame = capture.grab(timeout=2.0)
        assert np.array_equal(picture_of(frame), pictures[0])
        assert frame.sequence == 2


def cursor_picture() -> np.ndarray:
    """64x64 premultiplied ARGB8888 (B, G, R, A in memory): an opaque 16x16
    square at (8, 8), a half-transparent row 40 and transparent elsewhere."""
    cursor = np.zeros((64, 64, 4), np.uint8)
    cursor[8:24, 8:24] = (10, 200, 30, 255)
    cursor[40, :] = (64, 0, 100, 128)  # premultiplied: colour <= alpha
    return cursor


def expected_with_cursor(screen: np.ndarray, cursor: np.ndarray, x: int, y: int) -> np.ndarray:
    """The screen with ``cursor`` at (x, y), premultiplied "over", clipped."""
    out = screen.astype(np.int32)
    height, width = screen.shape[:2]
    for row in range(cursor.shape[0]):
        for col in range(cursor.shape[1]):
            sx, sy = x + col, y + row
            if 0 <= sx < width and 0 <= sy < height:
                alpha = int(cursor[row, col, 3])
                colour = cursor[row, col, :3].astype(np.int32)
                out[sy, sx, :3] = colour + (out[sy, sx, :3] * (255 - alpha) + 127) // 255
    return out.astype(np.uint8)


# On screen; over the left and bottom edges (the square's corner still shows).
@pytest.mark.parametrize("x, y", [(100, 50), (-12, 730)])
def test_capture_composites_the_cursor_plane_where_it_is(card, scanout, x, y):
    width, height = scanout.mode.width, scanout.mode.height
    screen = pattern(width, height, 3)
    scanout.show(scanout.buffer(screen))
    cursor = cursor_picture()
    scanout.cursor(scanout.buffer(cursor, DRM_FORMAT_ARGB8888), x, y)
    with KmsCapture(device=card, fps=1000) as capture:
        got = picture_of(capture.grab(timeout=2.0)).astype(np.int16)
        assert capture.cursor_note == ""
    want = expected_with_cursor(screen, cursor, x, y).astype(np.int16)
    # Opaque and transparent cursor pixels are exact; the half-transparent row
    # may differ by one step of rounding.
    assert np.abs(got[..., :3] - want[..., :3]).max() <= 1
    mismatched = np.argwhere(got[..., :3] != want[..., :3])
    assert all(r == y + 40 for r, _, _ in mismatched), mismatched[:5]
    if 0 <= x + 10 < width and 0 <= y + 10 < height:  # the opaque square is on screen
        assert tuple(got[y + 10, x + 10, :3]) == (10, 200, 30)


def test_capture_leaves_out_a_hidden_cursor(card, scanout):
    width, height = scanout.mode.width, scanout.mode.height
    screen = pattern(width, height, 4)
    scanout.show(scanout.buffer(screen))
    scanout.cursor(scanout.buffer(cursor_picture(), DRM_FORMAT_ARGB8888), 10, 10)
    scanout.cursor(None)
    with KmsCapture(device=card, fps=1000) as capture:
        assert np.array_equal(picture_of(capture.grab(timeout=2.0)), screen)
        assert capture.cursor_note == "cursor not shown: the cursor is hidden"


def quadrants(width: int, height: int) -> av.VideoFrame:
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:height // 2, :width // 2] = (255, 0, 0)
    rgb[:height // 2, width // 2:] = (0, 255, 0)
    rgb[height // 2:, :width // 2] = (0, 0, 255)
    rgb[height // 2:, width // 2:] = (250, 240, 10)
    rgb[100:110, 200:300] = (17, 34, 51)
    return av.VideoFrame.from_ndarray(rgb, format="rgb24")


def test_present_shows_the_frame_and_restores_the_crtc(card, scanout):
    width, height = scanout.mode.width, scanout.mode.height
    desktop = pattern(width, height, 5)
    before = scanout.buffer(desktop)
    scanout.show(before)
    scanout.drop_master()  # as a console switch does: the presenter becomes master
    frame = quadrants(width, height)
    want_bgr = frame.to_ndarray(format="rgb24")[..., ::-1]
    with KmsPresenter(width=width, height=height, device=card) as presenter:
        assert (presenter.mode.width, presenter.mode.height) == (width, height)
        for _ in range(3):
            presenter.present(frame)
        fb_id, shown = shown_pixels(card)
        assert fb_id != before.fb_id
        assert np.array_equal(shown[..., :3], want_bgr)
        with KmsCapture(device=card, fps=1000, cursor=False) as capture:
            assert np.array_equal(picture_of(capture.grab(timeout=2.0))[..., :3], want_bgr)
    assert presenter.restore_note == ""
    fb_id, shown = shown_pixels(card)
    assert fb_id == before.fb_id
    assert np.array_equal(shown, desktop)


def test_vblank_sync_grabs_a_flip_at_the_vblank_it_lands_on(card, scanout):
    """Each grab waits for the next vblank; a flip that landed on that vblank
    (the kernel's flip event says which) must be in the frame, and how long
    after the flip the grab completed is measured."""
    width, height = scanout.mode.width, scanout.mode.height
    pictures = [pattern(width, height, seed) for seed in (6, 7)]
    buffers = [scanout.buffer(p) for p in pictures]
    scanout.show(buffers[0])
    shown, caught, delays_ms = 0, 0, []
    with KmsCapture(device=card, fps=1000, cursor=False, vblank_sync=True) as capture:
        assert np.array_equal(picture_of(capture.grab(timeout=2.0)), pictures[0])
        for step in range(1, 9):
            target = step % 2
            scanout.card.page_flip(scanout.crtc_id, buffers[target].fb_id,
                                   DRM_MODE_PAGE_FLIP_EVENT, buffers[target].fb_id)
            frame = capture.grab(timeout=2.0)
            count, _ = capture._pacer.last_vblank  # the vblank this grab waited for
            events = scanout.card.read_events(2.0)
            (flip,) = [e for e in events if e.type == DRM_EVENT_FLIP_COMPLETE]
            got = picture_of(frame)
            if flip.sequence <= count:  # on screen at the vblank the grab waited for
                assert np.array_equal(got, pictures[target]), (step, flip.sequence, count)
                caught += 1
                delays_ms.append((frame.stamps.captured - flip.timestamp_ns) / 1e6)
            else:
                # The flip landed after the vblank the grab waited for.  The grab
                # reads some time after that vblank (several ms under TCG and
                # load), so the flip may land before the read picks its
                # framebuffer: either whole picture is right, a mix never is.
                assert any(np.array_equal(got, p) for p in (pictures[target], pictures[shown])), (
                    step, flip.sequence, count)
            shown = target
    print(f"\nvblank sync: {caught}/8 flips grabbed at their own vblank; grab completed "
          f"{', '.join(f'{d:.1f}' for d in sorted(delays_ms))} ms after the flip")
    assert caught >= 1
