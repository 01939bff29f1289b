"""Reading spa_buffers that the test lays out itself: cursor metadata (the SPA layout
that xdg-desktop-portal-wlr never sends, since it only embeds the cursor), damage,
headers and the chunk checks that skip buffers without a picture."""

from __future__ import annotations

import os

import numpy as np
import pytest
from pipewire_helpers import CURSOR_BITMAP_OFFSET, write_cursor_meta

from rootstream._native import pipewire as pw
from rootstream._native import spa_video as sv
from rootstream.capture.pipewire_buffers import (
    BufferSkipped,
    DmaBufMaps,
    FrameSlots,
    copy_plane,
    find_meta,
    locate_plane,
    read_cursor,
    read_damage,
    read_header,
)
from rootstream.capture.pipewire_damage import DamageLog, clip_rects, copy_boxes
from rootstream.errors import CaptureError

ffi = pw.ffi
BGRX = sv.VideoFormat(8, 4, 8, "BGRX", None, None)


class Built:
    """A spa_buffer with one MemPtr plane and the given metas, all owned by Python."""

    def __init__(self, pixels: np.ndarray, metas: dict[int, int], stride: int):
        self.pixels = pixels
        self.memory = [ffi.new("char[]", size) for size in metas.values()]
        self.metas = ffi.new("struct spa_meta[]", [
            {"type": kind, "size": size, "data": memory}
            for (kind, size), memory in zip(metas.items(), self.memory, strict=True)])
        self.chunk = ffi.new("struct spa_chunk *", {"offset": 0, "size": pixels.nbytes,
                                                    "stride": stride, "flags": 0})
        self.data = ffi.new("struct spa_data[1]", [{
            "type": pw.DATA_MEMPTR, "flags": 1, "fd": -1, "mapoffset": 0,
            "maxsize": pixels.nbytes, "data": ffi.from_buffer(pixels), "chunk": self.chunk}])
        self.buffer = ffi.new("struct spa_buffer *", {
            "n_metas": len(metas), "n_datas": 1, "metas": self.metas, "datas": self.data})

    def meta(self, kind: int):
        return find_meta(self.buffer, kind)[0]


def test_cursor_meta_with_a_bitmap_in_another_byte_order():
    built = Built(np.zeros((4, 32), np.uint8), {sv.META_CURSOR: sv.cursor_meta_size(8, 8)}, 32)
    rgba = np.arange(3 * 2 * 4, dtype=np.uint8).reshape(3, 2, 4)
    write_cursor_meta(built.meta(sv.META_CURSOR), (10, -3, 1, 2, rgba), spa_format=11)
    cursor = read_cursor(built.meta(sv.META_CURSOR), sv.cursor_meta_size(8, 8),
                         frame_spa_format=8)
    assert (cursor.x, cursor.y, cursor.hotspot_x, cursor.hotspot_y) == (10, -3, 1, 2)
    # RGBA -> the frame's BGRx order: B, G, R, then alpha where the frame has X.
    np.testing.assert_array_equal(cursor.bitmap, rgba[:, :, [2, 1, 0, 3]])


def test_cursor_meta_without_a_bitmap_or_without_a_cursor():
    built = Built(np.zeros((4, 32), np.uint8), {sv.META_CURSOR: sv.cursor_meta_size(4, 4)}, 32)
    pointer = built.meta(sv.META_CURSOR)
    write_cursor_meta(pointer, (5, 6, 0, 0, None), spa_format=8)
    cursor = read_cursor(pointer, sv.cursor_meta_size(4, 4), 8)
    assert (cursor.x, cursor.y, cursor.bitmap) == (5, 6, None)
    write_cursor_meta(pointer, None, spa_format=8)  # id 0: no cursor in this buffer
    assert read_cursor(pointer, sv.cursor_meta_size(4, 4), 8) is None
    assert read_cursor(pointer, sv.META_CURSOR_SIZE - 1, 8) is None  # too small to be one


def test_a_bitmap_running_past_its_meta_is_dropped_not_read():
    size = sv.cursor_meta_size(4, 4)
    built = Built(np.zeros((4, 32), np.uint8), {sv.META_CURSOR: size}, 32)
    pointer = built.meta(sv.META_CURSOR)
    write_cursor_meta(pointer, (1, 1, 0, 0, np.zeros((4, 4, 4), np.uint8)), spa_format=8)
    bitmap = ffi.cast("struct spa_meta_bitmap *", ffi.cast("char *", pointer)
                      + CURSOR_BITMAP_OFFSET)
    bitmap.size.height = 400  # a producer bug: rows beyond the meta's end
    cursor = read_cursor(pointer, size, 8)
    assert cursor.x == 1 and cursor.bitmap is None
    bitmap.size.height, bitmap.format = 4, 0  # format 0: "no bitmap"
    assert read_cursor(pointer, size, 8).bitmap is None


def test_damage_ends_at_the_first_empty_region_and_header_reads_back():
    built = Built(np.zeros((4, 32), np.uint8),
                  {sv.META_HEADER: 32, sv.META_VIDEO_DAMAGE: 16 * 3}, 32)
    regions = ffi.cast("struct spa_meta_region *", built.meta(sv.META_VIDEO_DAMAGE))
    regions[0].region = {"position": {"x": 1, "y": 2}, "size": {"width": 3, "height": 4}}
    regions[2].region = {"position": {"x": 9, "y": 9}, "size": {"width": 9, "height": 9}}
    assert read_damage(built.buffer) == [(1, 2, 3, 4)]
    header = ffi.cast("struct spa_meta_header *", built.meta(sv.META_HEADER))
    header.pts, header.seq, header.flags = 123456789, 42, pw.META_HEADER_FLAG_CORRUPTED
    assert read_header(built.buffer) == (123456789, 42, pw.META_HEADER_FLAG_CORRUPTED)
    no_meta = Built(np.zeros((4, 32), np.uint8), {}, 32)
    assert read_header(no_meta.buffer) == (None, None, 0)
    assert read_damage(no_meta.buffer) is None


def test_chunks_without_a_readable_picture_are_skipped():
    built = Built(np.arange(4 * 32, dtype=np.uint8).reshape(4, 32), {}, 32)
    plane = locate_plane(built.buffer, BGRX)
    dest = np.zeros((4, 32), np.uint8)
    copy_plane(plane, dest, BGRX, DmaBufMaps())
    np.testing.assert_array_equal(dest, built.pixels)
    for flags, size, stride, why in [(pw.CHUNK_FLAG_CORRUPTED, 128, 32, "corrupted"),
                                     (0, 0, 32, "empty"), (pw.CHUNK_FLAG_EMPTY, 128, 32, "empty"),
                                     (0, 128, 16, "less than a row"),
                                     (0, 128, 40, "runs past")]:
        built.chunk.flags, built.chunk.size, built.chunk.stride = flags, size, stride
        with pytest.raises(BufferSkipped, match=why):
            locate_plane(built.buffer, BGRX)


def test_frame_slots_never_hand_out_a_busy_array():
    slots = FrameSlots()
    a = slots.free(4, 32, ())
    b = slots.free(4, 32, (a,))
    c = slots.free(4, 32, (a, b))
    assert len({id(a), id(b), id(c)}) == 3
    assert slots.free(4, 32, (b, c)) is a  # reused, not reallocated
    bigger = slots.free(8, 32, (a,))  # a new size keeps only the busy array
    assert bigger.shape == (8, 32) and {id(x) for x in slots.arrays} == {id(a), id(bigger)}


def test_a_missing_libpipewire_is_one_sentence_and_a_hint(monkeypatch):
    monkeypatch.setattr(pw, "_lib", None)
    monkeypatch.setattr(pw, "LIBRARY", "libpipewire-0.3-not-installed.so.0")
    with pytest.raises(CaptureError, match="libpipewire-0.3 is not installed") as caught:
        pw.load()
    assert "apt-get install" in caught.value.hint


def test_the_portal_fd_is_closed_even_when_libpipewire_is_missing(monkeypatch):
    from rootstream.capture.pipewire_stream import PipeWireStream

    monkeypatch.setattr(pw, "_lib", None)
    monkeypatch.setattr(pw, "LIBRARY", "libpipewire-0.3-not-installed.so.0")
    read_end, write_end = os.pipe()
    os.close(write_end)
    with pytest.raises(CaptureError, match="not installed"):
        PipeWireStream(1, fd=read_end)
    with pytest.raises(OSError):
        os.fstat(read_end)


def test_the_damage_log_asks_for_a_full_copy_whenever_a_change_is_unaccounted_for():
    log = DamageLog(keep=4)
    assert log.changed_since(None) is None
    log.saw_buffer(10)
    first = log.add_picture([(0, 0, 4, 4)])  # the first picture: nothing to build on
    assert log.changed_since(first) == []
    log.saw_buffer(11)
    log.add_picture([(1, 1, 2, 2)])
    log.saw_buffer(12)
    log.add_picture([(5, 5, 1, 1)])
    assert log.changed_since(first) == [(1, 1, 2, 2), (5, 5, 1, 1)]
    log.saw_buffer(14)  # seq 13 never reached us: whatever it changed is unknown
    after_gap = log.add_picture([(0, 0, 1, 1)])
    assert log.changed_since(first) is None and log.changed_since(after_gap - 1) is None
    log.saw_buffer(15)
    log.lost_picture()  # a corrupted buffer we passed over
    log.add_picture([(0, 0, 1, 1)])
    assert log.changed_since(after_gap) is None
    log.saw_buffer(16)
    log.add_picture([])  # an empty list says nothing: not "nothing changed"
    assert log.changed_since(log.version - 1) is None
    for seq in range(17, 22):
        log.saw_buffer(seq)
        log.add_picture([(0, 0, 1, 1)])
    assert log.changed_since(log.version - 4) == [(0, 0, 1, 1)] * 4
    assert log.changed_since(log.version - 5) is None  # older than the log keeps


def test_damage_rectangles_from_the_producer_are_clipped_to_the_frame():
    assert clip_rects([(-5, -5, 10, 10), (60, 40, 100, 100), (70, 0, 5, 5)], 64, 48) == [
        (0, 0, 5, 5), (60, 40, 64, 48)]
    assert clip_rects([(0, 0, 64, 48)], 64, 48) is None  # the whole frame: one plain copy
    assert clip_rects([(i, 0, 1, 1) for i in range(40)], 64, 48) is None
    source = np.arange(48 * 256, dtype=np.uint32).astype(np.uint8)
    dest = np.zeros((48, 256), np.uint8)
    copy_boxes(source, dest, 256, 48, 256, [(2, 3, 4, 5)])
    expected = np.zeros((48, 256), np.uint8)
    expected[3:5, 8:16] = source.reshape(48, 256)[3:5, 8:16]
    np.testing.assert_array_equal(dest, expected)
