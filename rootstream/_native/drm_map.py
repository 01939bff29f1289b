"""CPU mappings of scanout buffers, for reading what a plane shows.

GETFB2 hands out a fresh GEM handle on every call.  The handle is turned into
a dma-buf (PRIME) and mapped; if the driver cannot export, MAP_DUMB gives an
offset at which the card fd itself maps the buffer.  Either way the handle is
closed at once: the mapping keeps the buffer alive.

Compositors flip between two or three buffers, so mappings are cached by the
identity of the buffer object: the dma-buf's inode (the kernel exports a GEM
object as the same dma-buf every time) or the dumb mapping offset (unique per
object while mapped).  A steady-state frame then costs GETFB2, PRIME export,
fstat and two closes, never an mmap.

A dma-buf read is bracketed with DMA_BUF_IOCTL_SYNC START/END so the CPU sees
what the GPU wrote on non-coherent hardware.  The bracket stays open while the
returned view is in use: until the next ``map()`` or ``close()``.
"""

from __future__ import annotations

import mmap
import os
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from rootstream._native.drm_abi import DMA_BUF_SYNC_END, DMA_BUF_SYNC_READ, DMA_BUF_SYNC_START
from rootstream._native.drm_device import DrmDevice, DrmIoctlError, dma_buf_sync
from rootstream._native.drm_parse import DrmError, Framebuffer

PAGE = mmap.PAGESIZE


@dataclass(slots=True)
class Mapping:
    key: tuple
    region: mmap.mmap
    dmabuf_fd: int  # -1 for a MAP_DUMB mapping of the card fd
    size: int

    def release(self) -> None:
        if self.dmabuf_fd >= 0:
            os.close(self.dmabuf_fd)
            self.dmabuf_fd = -1
        try:
            self.region.close()
        except BufferError:
            # A caller still holds a numpy view of a frame: the kernel mapping
            # goes when that view is collected; the buffer stays readable.
            pass


class BufferMapper:
    """Maps framebuffers' first plane and keeps the last few mappings."""

    def __init__(self, device: DrmDevice, capacity: int = 6):
        self.device = device
        self.capacity = capacity
        self._cache: OrderedDict[tuple, Mapping] = OrderedDict()
        self._synced: list[Mapping] = []  # dma-bufs inside a START..END bracket
        self.prime_failed: str = ""  # why PRIME export is not used, once it failed
        self.last_path = ""  # "dma-buf" or "dumb", for diagnostics

    def map(self, fb: Framebuffer) -> Mapping:
        """A read-only mapping holding ``fb``'s plane 0, synced for CPU reads
        until :meth:`end_read`."""
        handle = fb.handles[0]
        if handle == 0:
            raise DrmError("framebuffer has no handle (needs CAP_SYS_ADMIN)")
        needed = fb.offsets[0] + fb.pitches[0] * fb.height
        try:
            mapping = self._map_handle(handle, needed)
        finally:
            self.close_handles(fb)
        return self._begin_read(mapping, fb)

    def map_dmabuf(self, fd: int, fb: Framebuffer) -> Mapping:
        """Like :meth:`map`, for ``fb``'s plane 0 handed over as a dma-buf ``fd``
        (by rootstream-kms-helper); the fd is owned from here on."""
        mapping = self._map_dmabuf(fd)
        self.last_path = "dma-buf from the KMS helper"
        return self._begin_read(mapping, fb)

    def reread(self, mapping: Mapping) -> bool:
        """Open a new read bracket on a mapping :meth:`map_dmabuf` returned before;
        False when the cache has let it go (map the buffer again)."""
        if self._cache.get(mapping.key) is not mapping:
            return False
        self._cache.move_to_end(mapping.key)
        dma_buf_sync(mapping.dmabuf_fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ)
        self._synced.append(mapping)
        return True

    def _begin_read(self, mapping: Mapping, fb: Framebuffer) -> Mapping:
        needed = fb.offsets[0] + fb.pitches[0] * fb.height
        if mapping.size < needed:
            raise DrmError(f"framebuffer {fb.id} is larger than its buffer "
                           f"({needed} > {mapping.size} bytes)")
        if mapping.dmabuf_fd >= 0:
            dma_buf_sync(mapping.dmabuf_fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ)
            self._synced.append(mapping)
        return mapping

    def end_read(self) -> None:
        """Close the CPU-access brackets opened by :meth:`map` since the last call."""
        synced, self._synced = self._synced, []
        for mapping in synced:
            if mapping.dmabuf_fd >= 0:
                try:
                    dma_buf_sync(mapping.dmabuf_fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ)
                except DrmError:
                    pass  # the buffer went away meanwhile; nothing left to sync

    def close_handles(self, fb: Framebuffer) -> None:
        # Planes of one buffer share a handle; close each distinct one once.
        for handle in {h for h in fb.handles if h}:
            try:
                self.device.gem_close(handle)
            except DrmError:
                pass  # already gone (the buffer was freed); nothing leaks

    def _map_handle(self, handle: int, needed: int) -> Mapping:
        if not self.prime_failed:
            try:
                fd = self.device.prime_handle_to_fd(handle)
            except DrmIoctlError as exc:
                self.prime_failed = f"PRIME export failed ({exc}); using MAP_DUMB"
            else:
                try:
                    mapping = self._map_dmabuf(fd)
                except DrmError as exc:
                    # Some drivers export dma-bufs that cannot be mmapped.
                    self.prime_failed = f"dma-buf mapping failed ({exc}); using MAP_DUMB"
                else:
                    self.last_path = "dma-buf"
                    return mapping
        self.last_path = "dumb"
        offset = self.device.map_dumb(handle)
        key = ("dumb", offset)
        cached = self._lookup(key)
        if cached is not None:
            return cached
        length = -(-needed // PAGE) * PAGE
        try:
            # ACCESS_READ: PROT_READ, and numpy views of it are read-only too,
            # so nothing can scribble on the screen being captured.
            region = mmap.mmap(self.device.fd, length, access=mmap.ACCESS_READ, offset=offset)
        except OSError as exc:
            raise DrmError(f"cannot map the framebuffer: {os.strerror(exc.errno)}") from exc
        return self._store(Mapping(key, region, -1, length))

    def _map_dmabuf(self, fd: int) -> Mapping:
        try:
            st = os.fstat(fd)
            key = ("dma-buf", st.st_dev, st.st_ino)
            cached = self._lookup(key)
            if cached is not None:
                os.close(fd)
                return cached
            # dma-buf fds report their size through lseek(SEEK_END).
            size = os.lseek(fd, 0, os.SEEK_END)
            os.lseek(fd, 0, os.SEEK_SET)
            region = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
        except OSError as exc:
            os.close(fd)
            raise DrmError(f"cannot map the dma-buf: {os.strerror(exc.errno)}") from exc
        return self._store(Mapping(key, region, fd, size))

    def _lookup(self, key: tuple) -> Mapping | None:
        mapping = self._cache.get(key)
        if mapping is not None:
            self._cache.move_to_end(key)
        return mapping

    def _store(self, mapping: Mapping) -> Mapping:
        self._cache[mapping.key] = mapping
        while len(self._cache) > self.capacity:
            _, old = self._cache.popitem(last=False)
            if old in self._synced:
                self._synced.remove(old)
                dma_buf_sync(old.dmabuf_fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ)
            old.release()
        return mapping

    def close(self) -> None:
        self.end_read()
        while self._cache:
            _, mapping = self._cache.popitem()
            mapping.release()


def plane_view(mapping: Mapping, fb: Framebuffer, x: int = 0, y: int = 0,
               width: int | None = None, height: int | None = None) -> np.ndarray:
    """A read-only (height, pitch) uint8 view whose row r starts at pixel (x, y + r).

    The CRTC may show only part of a larger framebuffer (one framebuffer
    spanning two monitors); the view then starts at the CRTC's corner.  When
    the last row would run past the mapping, the rows are copied instead.
    """
    width = fb.width - x if width is None else width
    height = fb.height - y if height is None else height
    pitch = fb.pitches[0]
    if x < 0 or y < 0 or x + width > fb.width or y + height > fb.height:
        raise DrmError(f"CRTC viewport {width}x{height}+{x}+{y} lies outside "
                       f"framebuffer {fb.id} ({fb.width}x{fb.height})")
    start = fb.offsets[0] + y * pitch + x * 4
    if start + height * pitch <= mapping.size:
        return np.frombuffer(mapping.region, np.uint8, height * pitch, start).reshape(
            height, pitch)
    whole = np.frombuffer(mapping.region, np.uint8, mapping.size - fb.offsets[0],
                          fb.offsets[0])
    rows = np.empty((height, width * 4), np.uint8)
    for r in range(height):
        row = start - fb.offsets[0] + r * pitch
        rows[r] = whole[row:row + width * 4]
    return rows
