"""Reading one dequeued PipeWire video buffer: its pixels and its metadata.

Everything here runs on the PipeWire thread inside the ``process`` callback,
between dequeue and requeue, so it copies what it needs and keeps no pointer
into the buffer.  The layouts are spa_buffer / spa_data / spa_chunk and the
spa_meta_* structs of rootstream._native.pipewire (checked against the headers
by tests/test_pipewire_abi.py).
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

import numpy as np

from .._native import pipewire as pw
from .._native.drm_abi import DMA_BUF_SYNC_END, DMA_BUF_SYNC_READ, DMA_BUF_SYNC_START
from .._native.drm_device import dma_buf_sync
from .._native.spa_video import VideoFormat
from .pipewire_damage import copy_boxes

ffi = pw.ffi

# spa_video_format -> the order of the 4 bytes of a pixel in memory, for cursor bitmaps.
_BYTE_ORDER = {7: "RGBX", 8: "BGRX", 9: "XRGB", 10: "XBGR", 11: "RGBA", 12: "BGRA",
               13: "ARGB", 14: "ABGR"}


@dataclass
class CursorInfo:
    x: int  # where the cursor's hotspot is in the frame
    y: int
    hotspot_x: int
    hotspot_y: int
    bitmap: np.ndarray | None  # (h, w, 4) uint8 in the frame's byte order, when (re)sent


@dataclass
class PipeWireFrame:
    pixels: np.ndarray  # (height, stride) uint8, ours; valid until the next wait_frame()
    width: int
    height: int
    stride: int
    pixel_format: str  # one of rootstream.convert.PIXEL_FORMATS
    pts_ns: int | None  # spa_meta_header.pts (CLOCK_MONOTONIC ns) when present
    arrived_ns: int  # time.monotonic_ns() when the buffer was dequeued
    sequence: int  # spa_meta_header.seq, or our own counter
    cursor: CursorInfo | None
    damage: list[tuple[int, int, int, int]] | None
    # Which picture the pixels hold (a DamageLog version): a frame with the same
    # number shows the same pixels (a cursor-only update); 0 when unknown.
    picture: int = 0


class BufferSkipped(Exception):
    """The buffer holds no new picture (corrupted, empty, cursor-only); requeue it."""


_HEADER_SIZE = ffi.sizeof("struct spa_meta_header")
_REGION_SIZE = ffi.sizeof("struct spa_meta_region")


def find_meta(buffer, meta_type: int):
    """(pointer, size) of the buffer's metadata of ``meta_type``, or None."""
    for i in range(buffer.n_metas):
        meta = buffer.metas[i]
        if meta.type == meta_type and meta.data != ffi.NULL:
            return meta.data, meta.size
    return None


def meta_table(buffer) -> dict[int, tuple]:
    """{meta type: (pointer, size)} of all the buffer's metadata: fixed for the
    buffer's life, so the stream looks it up once per buffer, not per frame."""
    table = {}
    for i in range(buffer.n_metas):
        meta = buffer.metas[i]
        if meta.data != ffi.NULL:
            table.setdefault(int(meta.type), (meta.data, meta.size))
    return table


def read_header(buffer, metas: dict | None = None) -> tuple[int | None, int | None, int]:
    """(pts ns or None, seq or None, flags) from the header meta."""
    found = (find_meta(buffer, pw.META_HEADER) if metas is None
             else metas.get(pw.META_HEADER))
    if found is None or found[1] < _HEADER_SIZE:
        return None, None, 0
    header = ffi.cast("struct spa_meta_header *", found[0])
    return int(header.pts), int(header.seq), int(header.flags)


def read_damage(buffer, metas: dict | None = None) -> list[tuple[int, int, int, int]] | None:
    """The damaged rectangles (x, y, w, h); the array ends at the first empty one."""
    found = (find_meta(buffer, pw.META_VIDEO_DAMAGE) if metas is None
             else metas.get(pw.META_VIDEO_DAMAGE))
    if found is None:
        return None
    count = found[1] // _REGION_SIZE
    regions = ffi.cast("struct spa_meta_region *", found[0])
    rects = []
    for i in range(count):
        r = regions[i].region
        if r.size.width == 0 or r.size.height == 0:
            break
        rects.append((r.position.x, r.position.y, r.size.width, r.size.height))
    return rects


def read_cursor(pointer, size: int, frame_spa_format: int) -> CursorInfo | None:
    """The cursor meta at ``pointer`` (``size`` bytes), or None when it holds no cursor."""
    if size < ffi.sizeof("struct spa_meta_cursor"):
        return None
    cursor = ffi.cast("struct spa_meta_cursor *", pointer)
    if cursor.id == 0:  # SPA's "invalid": no cursor in this buffer
        return None
    bitmap = None
    offset = cursor.bitmap_offset
    if offset and offset + ffi.sizeof("struct spa_meta_bitmap") <= size:
        bitmap = _read_bitmap(ffi.cast("char *", pointer) + offset, size - offset,
                              frame_spa_format)
    return CursorInfo(cursor.position.x, cursor.position.y, cursor.hotspot.x, cursor.hotspot.y,
                      bitmap)


def cursor_changed(old: CursorInfo | None, new: CursorInfo | None) -> bool:
    """Whether a cursor update shows something new: moved, shown, hidden or a new
    bitmap (a producer may repeat the same cursor meta in every buffer)."""
    if old is None or new is None:
        return (old is None) != (new is None)
    return (new.bitmap is not None or (old.x, old.y, old.hotspot_x, old.hotspot_y)
            != (new.x, new.y, new.hotspot_x, new.hotspot_y))


def _read_bitmap(pointer, size: int, frame_spa_format: int) -> np.ndarray | None:
    meta = ffi.cast("struct spa_meta_bitmap *", pointer)
    width, height, stride = meta.size.width, meta.size.height, meta.stride
    order = _BYTE_ORDER.get(meta.format)
    if order is None or not width or not height or stride < width * 4:
        return None  # format 0 means "no bitmap"; others we cannot read
    if meta.offset + stride * (height - 1) + width * 4 > size:
        return None  # a producer bug: the pixels run past the meta
    raw = np.frombuffer(ffi.buffer(ffi.cast("char *", pointer) + meta.offset,
                                   stride * (height - 1) + width * 4), np.uint8)
    rows = np.lib.stride_tricks.as_strided(raw, (height, width, 4), (stride, 4, 1))
    target = _BYTE_ORDER.get(frame_spa_format, "BGRA")
    # Reorder channels into the frame's order; alpha (or X) lands where the frame has it.
    source = order.replace("X", "A")
    index = [source.index(c) for c in target.replace("X", "A")]
    return np.ascontiguousarray(rows[:, :, index])


class DmaBufMaps:
    """mmaps of DMA-BUF planes, one per fd, made on first use and dropped with the buffer."""

    def __init__(self):
        self._maps: dict[int, mmap.mmap] = {}

    def view(self, fd: int, length: int) -> mmap.mmap:
        region = self._maps.get(fd)
        if region is None or len(region) < length:
            region = mmap.mmap(fd, length, mmap.MAP_SHARED, mmap.PROT_READ)
            self._maps[fd] = region
        return region

    def forget(self, fd: int) -> None:
        region = self._maps.pop(fd, None)
        if region is not None:
            region.close()

    def close(self) -> None:
        for fd in list(self._maps):
            self.forget(fd)


@dataclass
class Plane:
    """Where the picture lies in a buffer's first data plane."""
    data: object  # struct spa_data *
    offset: int  # of the first row, from the start of the mapped data
    stride: int
    length: int  # bytes to copy


def locate_plane(buffer, fmt: VideoFormat) -> Plane:
    """The picture of ``buffer``; BufferSkipped when it holds none we can read."""
    if buffer.n_datas < 1:
        raise BufferSkipped("buffer has no data plane")
    data = buffer.datas[0]
    chunk = data.chunk
    if chunk.flags & pw.CHUNK_FLAG_CORRUPTED:
        raise BufferSkipped("chunk marked corrupted")
    if chunk.size == 0 or chunk.flags & pw.CHUNK_FLAG_EMPTY:
        raise BufferSkipped("empty chunk (a cursor-only update)")
    row_bytes = fmt.width * 4
    stride = chunk.stride if chunk.stride > 0 else row_bytes
    if stride < row_bytes:
        raise BufferSkipped(f"stride {stride} is less than a row ({row_bytes})")
    # SPA keeps chunk offsets modulo maxsize (ring-buffer style).
    offset = chunk.offset % data.maxsize if data.maxsize else chunk.offset
    if offset + stride * (fmt.height - 1) + row_bytes > data.maxsize:
        raise BufferSkipped(f"{fmt.width}x{fmt.height} stride {stride} runs past the buffer")
    if data.type != pw.DATA_DMABUF and data.data == ffi.NULL:
        raise BufferSkipped(f"data type {data.type} is not mapped")
    return Plane(data, offset, stride, min(stride * fmt.height, data.maxsize - offset))


class MappedPlanes:
    """numpy views of shared-memory planes (MemFd/MemPtr, mapped by PipeWire), one per
    buffer, made on first use and dropped with the buffer: making one costs more
    than copying a few damaged rectangles."""

    def __init__(self):
        self._views: dict[int, np.ndarray] = {}

    def view(self, data) -> np.ndarray:
        key = int(ffi.cast("uintptr_t", data.data))
        view = self._views.get(key)
        if view is None or len(view) != data.maxsize:
            view = np.frombuffer(ffi.buffer(data.data, data.maxsize), np.uint8)
            self._views[key] = view
        return view

    def forget(self, data) -> None:
        if data.data != ffi.NULL:
            self._views.pop(int(ffi.cast("uintptr_t", data.data)), None)


def copy_plane(plane: Plane, dest: np.ndarray, fmt: VideoFormat, dmabufs: DmaBufMaps,
               boxes: list | None = None, mapped: MappedPlanes | None = None) -> None:
    """Copy the picture into ``dest`` ((height, stride) uint8): all of it, or only the
    (x0, y0, x1, y1) ``boxes`` when ``dest`` already holds the rest (never for xRGB,
    whose copy is shifted by a byte)."""
    data = plane.data
    if data.type == pw.DATA_DMABUF:
        fd = int(data.fd)
        region = dmabufs.view(fd, data.mapoffset + data.maxsize)
        # Bracket the CPU read so non-coherent GPUs flush their caches first.
        dma_buf_sync(fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ)
        try:
            _copy(np.frombuffer(region, np.uint8, plane.length, data.mapoffset + plane.offset),
                  dest, fmt, plane, boxes)
        finally:
            dma_buf_sync(fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ)
    elif mapped is not None:
        source = mapped.view(data)[plane.offset:plane.offset + plane.length]
        _copy(source, dest, fmt, plane, boxes)
    else:
        source = ffi.buffer(ffi.cast("char *", data.data) + plane.offset, plane.length)
        _copy(np.frombuffer(source, np.uint8), dest, fmt, plane, boxes)


def _copy(source: np.ndarray, dest: np.ndarray, fmt: VideoFormat, plane: Plane,
          boxes: list | None) -> None:
    if boxes is not None and fmt.pixel_format != "xRGB":
        copy_boxes(source, dest, plane.stride, fmt.height, fmt.width * 4, boxes)
        return
    flat = dest.reshape(-1)
    if fmt.pixel_format == "xRGB":
        # Shift one byte so each pixel reads R, G, B, then the next pixel's X: an RGBX
        # view of the same bytes, with no per-pixel shuffle.
        flat[:len(source) - 1] = source[1:]
        flat[len(source) - 1] = 0  # the last pixel's X: nothing follows it
    else:
        flat[:len(source)] = source


class FrameSlots:
    """Three reusable frame arrays, so the reader's frame, the newest unread frame and
    the one being written never share memory: no torn frames, no per-frame allocation.
    The caller serialises calls and says which arrays are busy.  Each array remembers
    which picture (a DamageLog version) it holds, so only what changed since is copied."""

    def __init__(self):
        self.arrays: list[np.ndarray] = []
        self._holds: dict[int, int] = {}  # id(array) -> version of the picture in it

    def version_in(self, array: np.ndarray) -> int | None:
        return self._holds.get(id(array))

    def wrote(self, array: np.ndarray, version: int | None) -> None:
        """``array`` now holds picture ``version`` (None: unknown, copy it in full)."""
        if version is None:
            self._holds.pop(id(array), None)
        else:
            self._holds[id(array)] = version

    def free(self, height: int, stride: int, busy: tuple) -> np.ndarray:
        """An array of that shape which is none of ``busy``."""
        for array in self.arrays:
            if array.shape == (height, stride) and not any(array is b for b in busy):
                return array
        # A new size (or a first frame): drop arrays nobody holds, allocate one.
        self.arrays = [a for a in self.arrays if any(a is b for b in busy)]
        self._holds = {id(a): self._holds[id(a)] for a in self.arrays if id(a) in self._holds}
        array = np.empty((height, stride), np.uint8)
        self.arrays.append(array)
        return array
