"""The metadata cursor: a pointer sent beside the picture (SPA cursor meta) is drawn
into the frame where its hotspot says, and a kept bitmap is reused until a new one
comes.  xdg-desktop-portal-wlr offers only the embedded cursor, so these frames are
built here from the stream's own dataclasses."""

from __future__ import annotations

import numpy as np

from rootstream.capture.pipewire_buffers import CursorInfo
from rootstream.capture.pipewire_stream import PipeWireFrame
from rootstream.capture.portal import MetadataCursor


def make_frame(cursor: CursorInfo | None, width: int = 16, height: int = 8,
               stride: int = 80) -> PipeWireFrame:
    pixels = np.zeros((height, stride), np.uint8)
    pixels[:, :width * 4].reshape(height, width, 4)[...] = (10, 20, 30, 0)  # B, G, R, X
    return PipeWireFrame(pixels=pixels, width=width, height=height, stride=stride,
                         pixel_format="BGRX", pts_ns=None, arrived_ns=0, sequence=0,
                         cursor=cursor, damage=None)


def view(pixels: np.ndarray, width: int = 16, height: int = 8) -> np.ndarray:
    return pixels[:, :width * 4].reshape(height, width, 4)


def test_the_pointer_is_drawn_at_its_hotspot_and_the_stream_copy_stays_clean():
    bitmap = np.zeros((2, 3, 4), np.uint8)
    bitmap[...] = (255, 255, 255, 255)  # opaque white
    bitmap[1, 2] = (0, 0, 255, 128)  # half-transparent red, straight alpha
    frame = make_frame(CursorInfo(x=5, y=3, hotspot_x=1, hotspot_y=1, bitmap=bitmap))
    drawn = view(MetadataCursor().draw(frame))
    assert drawn[2:4, 4:6, :3].tolist() == [[[255, 255, 255]] * 2] * 2
    # straight alpha: 255 * 128/255 + under * (1 - 128/255)
    assert drawn[3, 6, :3].tolist() == [5, 10, 143]
    assert drawn[1, 4, :3].tolist() == [10, 20, 30]  # above the pointer: untouched
    assert view(frame.pixels)[3, 5, :3].tolist() == [10, 20, 30]  # the stream's copy


def test_a_bitmap_sent_once_is_kept_for_later_frames_and_clipped_at_the_edge():
    cursor = MetadataCursor()
    bitmap = np.full((2, 2, 4), 255, np.uint8)
    cursor.draw(make_frame(CursorInfo(x=0, y=0, hotspot_x=0, hotspot_y=0, bitmap=bitmap)))
    moved = view(cursor.draw(make_frame(CursorInfo(x=15, y=7, hotspot_x=0, hotspot_y=0,
                                                   bitmap=None))))
    assert moved[7, 15, :3].tolist() == [255, 255, 255]  # the kept bitmap, clipped
    assert moved[0, 0, :3].tolist() == [10, 20, 30]  # not left behind where it was


def test_no_cursor_meta_leaves_the_frame_as_the_stream_gave_it():
    frame = make_frame(None)
    assert MetadataCursor().draw(frame) is frame.pixels


def test_a_pointer_moving_over_the_same_picture_leaves_no_trail():
    bitmap = np.full((2, 2, 4), 255, np.uint8)  # opaque white
    cursor = MetadataCursor()
    first = make_frame(CursorInfo(x=2, y=2, hotspot_x=0, hotspot_y=0, bitmap=bitmap))
    first.picture = 7
    view(cursor.draw(first))
    moved = make_frame(CursorInfo(x=10, y=4, hotspot_x=0, hotspot_y=0, bitmap=None))
    moved.pixels, moved.picture = first.pixels, 7  # a cursor-only frame: same picture
    drawn = view(cursor.draw(moved))
    assert drawn[2:4, 2:4, :3].tolist() == [[[10, 20, 30]] * 2] * 2  # the old spot, restored
    assert drawn[4:6, 10:12, :3].tolist() == [[[255, 255, 255]] * 2] * 2
    # A new picture in the same array (the stream reuses its arrays): copied whole.
    changed = make_frame(CursorInfo(x=10, y=4, hotspot_x=0, hotspot_y=0, bitmap=None))
    changed.pixels[:, :32] = 99  # the left half
    changed.picture = 8
    drawn = view(cursor.draw(changed))
    assert drawn[0, 0, :3].tolist() == [99, 99, 99] and drawn[7, 15, :3].tolist() == [10, 20, 30]
    assert drawn[4, 10, :3].tolist() == [255, 255, 255]
