"""The tests' own DRM master: puts known pictures on a real KMS display.

Used by the ``kms`` tests in the VM (vkms): it creates dumb buffers, draws
into them, wraps them as framebuffers (ADDFB2), lights the display (SETCRTC),
page-flips between them and places the cursor plane (SETPLANE), the way a
compositor does, so that KMS capture is checked against pixels a master
really scans out.  It also reads back what a CRTC shows (GETFB2 + PRIME +
mmap), to check KMS presentation.
"""

from __future__ import annotations

import fcntl
import mmap
import struct
from dataclasses import dataclass

import numpy as np

from rootstream._native import drm as kms
from rootstream._native.drm_abi import (
    DRM_EVENT_FLIP_COMPLETE,
    DRM_FORMAT_ARGB8888,
    DRM_FORMAT_XRGB8888,
    DRM_MODE_PAGE_FLIP_EVENT,
)
from rootstream._native.drm_device import DrmDevice
from rootstream._native.drm_ioctl import ioc
from rootstream._native.drm_map import BufferMapper, plane_view
from rootstream._native.drm_parse import Mode

# struct drm_mode_set_plane (drm_mode.h): plane, crtc, fb, flags, crtc_x/y
# (signed), crtc_w/h, then src_x, src_y, src_h, src_w in 16.16 fixed point.
SET_PLANE = struct.Struct("=4I2i6I")
assert SET_PLANE.size == 48
DRM_IOCTL_MODE_SETPLANE = ioc(3, "d", 0xB7, SET_PLANE.size)
DRM_IOCTL_DROP_MASTER = ioc(0, "d", 0x1F, 0)


def vkms_card() -> str:
    """The /dev/dri/card* that vkms drives (the VM's test display)."""
    for path in kms.find_cards():
        with DrmDevice(str(path)) as card:
            if card.version().name == "vkms":
                return str(path)
    raise AssertionError("no vkms card: the kms tests expect the test VM's vkms display")


@dataclass
class Buffer:
    handle: int
    pitch: int
    fb_id: int
    region: mmap.mmap
    width: int
    height: int

    def pixels(self) -> np.ndarray:
        """(height, width, 4) writable view, bytes in memory order (B, G, R, X/A)."""
        rows = np.frombuffer(self.region, np.uint8).reshape(-1, self.pitch)[:self.height]
        return rows[:, :self.width * 4].reshape(self.height, self.width, 4)


def pattern(width: int, height: int, seed: int) -> np.ndarray:
    """A picture no two seeds share, with every byte significant (X byte 0)."""
    rng = np.random.default_rng(seed)
    picture = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    picture[..., 3] = 0
    return picture


class Scanout:
    """DRM master on ``path``: lights its first connector with its own buffers."""

    def __init__(self, path: str):
        self.card = kms.open_card(path)
        topology = kms.read_topology(self.card)
        self.output = kms.choose_present_output(topology, None, 0, 0)
        self.mode: Mode = next(m for m in self.output.connector.modes if m.preferred)
        self.crtc_id = self.output.crtc_id
        planes = [p for p in topology.planes
                  if p.plane.possible_crtcs >> topology.crtc_index(self.crtc_id) & 1]
        self.cursor_plane = next(p.plane.id for p in planes if p.type == kms.PLANE_TYPE_CURSOR)
        self.buffers: list[Buffer] = []

    def buffer(self, picture: np.ndarray, fourcc: int = DRM_FORMAT_XRGB8888) -> Buffer:
        height, width = picture.shape[:2]
        handle, pitch, size = self.card.create_dumb(width, height, 32)
        fb_id = self.card.addfb2(width, height, fourcc, handle, pitch)
        region = mmap.mmap(self.card.fd, size, mmap.MAP_SHARED,
                           mmap.PROT_READ | mmap.PROT_WRITE, offset=self.card.map_dumb(handle))
        buf = Buffer(handle, pitch, fb_id, region, width, height)
        buf.pixels()[...] = picture
        self.buffers.append(buf)
        return buf

    def show(self, buf: Buffer) -> None:
        """SETCRTC: light the connector with ``buf`` (a modeset)."""
        self.card.set_crtc(self.crtc_id, buf.fb_id, 0, 0, [self.output.connector.id], self.mode)

    def flip(self, buf: Buffer, timeout: float = 2.0) -> None:
        """Page flip to ``buf`` and wait until the kernel says it is on screen."""
        self.card.page_flip(self.crtc_id, buf.fb_id, DRM_MODE_PAGE_FLIP_EVENT, buf.fb_id)
        for _ in range(10):
            events = self.card.read_events(timeout)
            if any(e.type == DRM_EVENT_FLIP_COMPLETE and e.user_data == buf.fb_id
                   for e in events):
                return
        raise AssertionError(f"no flip-complete event for fb {buf.fb_id} in {timeout} s")

    def cursor(self, buf: Buffer | None, x: int = 0, y: int = 0) -> None:
        """Show ``buf`` (ARGB8888) on the cursor plane at (x, y); None hides it."""
        if buf is None:
            args = SET_PLANE.pack(self.cursor_plane, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        else:
            args = SET_PLANE.pack(self.cursor_plane, self.crtc_id, buf.fb_id, 0, x, y,
                                  buf.width, buf.height, 0, 0,
                                  buf.height << 16, buf.width << 16)
        fcntl.ioctl(self.card.fd, DRM_IOCTL_MODE_SETPLANE, bytearray(args), True)

    def drop_master(self) -> None:
        """Let another client become master; our framebuffers stay alive."""
        fcntl.ioctl(self.card.fd, DRM_IOCTL_DROP_MASTER, 0)

    def close(self) -> None:
        for buf in self.buffers:
            buf.region.close()
        self.buffers = []
        self.card.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def shown_pixels(path: str) -> tuple[int, np.ndarray]:
    """(fb id, (h, w, 4) copy) of what the first lit CRTC on ``path`` scans out,
    read back through GETFB2 and a PRIME (or dumb) mapping."""
    with kms.open_card(path) as card:
        topology = kms.read_topology(card)
        output = kms.choose_capture_output(topology)
        fb = card.getfb2(card.plane(output.primary.plane.id, formats=False).fb_id)
        mapper = BufferMapper(card)
        try:
            rows = plane_view(mapper.map(fb), fb)
            picture = rows[:, :fb.width * 4].reshape(fb.height, fb.width, 4).copy()
        finally:
            mapper.close()
        return fb.id, picture


__all__ = ["DRM_FORMAT_ARGB8888", "Buffer", "Scanout", "pattern", "shown_pixels", "vkms_card"]
