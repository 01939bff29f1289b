"""ReplayCard: a DrmDevice whose ioctls are answered from recorded reply images.

Used by tests/test_kms_capture.py and tests/test_kms_present.py to run the
capture and presentation paths end to end without a GPU.  Only the kernel's
answers are replayed (from card-hdmi/, through the real parsers); everything
rootstream does with them runs as on a GPU:

- buffers live in a memfd, which is also the card fd: MAP_DUMB hands out
  offsets into it and rootstream mmaps them for real;
- PRIME export is refused (as on drivers without it), so capture takes its
  MAP_DUMB fallback;
- a page flip queues a real drm_event_vblank on a pipe, read back with
  select() and read() and parsed like the card fd's events.

Tests load this file by path (tests/ is not a package).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import select
from pathlib import Path

from rootstream._native import drm_parse as p
from rootstream._native.drm_abi import (
    DRM_CAP_PRIME,
    DRM_EVENT_FLIP_COMPLETE,
    DRM_FORMAT_XRGB8888,
    DRM_MODE_PAGE_FLIP_EVENT,
    ffi,
)
from rootstream._native.drm_device import DrmDevice, DrmIoctlError

CARD = Path(__file__).parent / "card-hdmi"
PAGE = 4096


class ReplayCard(DrmDevice):
    PITCH, WIDTH, HEIGHT = 7680, 1920, 1080

    def __init__(self, pitch_padding: int = 64):
        self.path, self.atomic, self._on_reply = "replay:card-hdmi", True, None
        self.fd = os.memfd_create("replay-card")
        self.pitch_padding = pitch_padding  # dumb buffers get padded pitches, like real drivers
        self.offsets: dict[int, int] = {}  # GEM handle -> offset in the memfd
        self._end = 0
        # The recorded framebuffers' GEM handles: 1 is fb 84, 2 the cursor's fb 90,
        # 4 a second screen buffer (fb 86) the compositor flips to.
        for handle, size in ((1, self.PITCH * self.HEIGHT), (2, 64 * 256),
                             (4, self.PITCH * self.HEIGHT)):
            self._allocate(handle, size)
        self.plane_fb = {31: 84, 40: 90}
        self.asked: list[str] = []  # every recorded reply read, in order
        self.handles_out: list[int] = []
        self.handles_closed: list[int] = []
        self.framebuffers: dict[int, tuple] = {}  # added by ADDFB2
        self.dumb_destroyed: list[int] = []
        self.crtc_sets: list[tuple] = []
        self.flips: list[tuple[int, int]] = []
        self.flip_busy = False  # make the next PAGE_FLIP fail with EBUSY
        self.not_master = False  # refuse SETCRTC as the kernel does for non-masters
        self._events_r, self._events_w = os.pipe()

    def _allocate(self, handle: int, size: int) -> int:
        self.offsets[handle] = self._end
        self._end += -(-size // PAGE) * PAGE
        os.ftruncate(self.fd, self._end)
        return self.offsets[handle]

    def write(self, handle: int, data: bytes) -> None:
        os.pwrite(self.fd, data, self.offsets[handle])

    def read(self, handle: int, size: int) -> bytes:
        return os.pread(self.fd, size, self.offsets[handle])

    def close(self) -> None:
        for fd in (self._events_r, self._events_w):
            if fd >= 0:
                os.close(fd)
        self._events_r = self._events_w = -1
        super().close()

    # -- topology, from the recorded images --------------------------------
    def _read(self, name: str) -> bytes:
        self.asked.append(name)
        return (CARD / f"{name}.bin").read_bytes()

    def version(self):
        return p.parse_version(self._read("version"))

    def get_cap(self, capability):
        return 1 if capability != DRM_CAP_PRIME else 0  # dumb buffers yes, PRIME no

    def property_blob(self, blob_id):
        return self._read(f"blob-{blob_id}")

    def resources(self):
        return p.parse_card_res(self._read("resources"))

    def connector(self, connector_id):
        return p.parse_connector(self._read(f"connector-{connector_id}"))

    def encoder(self, encoder_id):
        return p.parse_encoder(self._read(f"encoder-{encoder_id}"))

    def crtc(self, crtc_id):
        return p.parse_crtc(self._read(f"crtc-{crtc_id}"))

    def plane_resources(self):
        return p.parse_plane_res(self._read("plane-resources"))

    def plane(self, plane_id, *, formats=True):
        recorded = p.parse_plane(self._read(f"plane-{plane_id}"))
        fb_id = self.plane_fb.get(plane_id, recorded.fb_id)
        return dataclasses.replace(recorded, fb_id=fb_id, crtc_id=recorded.crtc_id if fb_id else 0)

    def object_properties(self, obj_id, obj_type):
        return p.parse_obj_properties(self._read(f"props-{obj_id}"))

    def property(self, prop_id):
        return p.parse_property(self._read(f"property-{prop_id}"))

    # -- capture -------------------------------------------------------------
    def getfb2(self, fb_id):
        if fb_id == 86:
            fb = dataclasses.replace(p.parse_fb2(self._read("fb-84")), id=86, handles=(4, 0, 0, 0))
        else:
            fb = p.parse_fb2(self._read({85: "fb-85-tiled"}.get(fb_id, f"fb-{fb_id}")))
        self.handles_out.extend(h for h in fb.handles if h)
        return fb

    def gem_close(self, handle):
        self.handles_closed.append(handle)

    def prime_handle_to_fd(self, handle):
        raise DrmIoctlError("DRM_IOCTL_PRIME_HANDLE_TO_FD failed: Operation not supported",
                            errno=errno.EOPNOTSUPP)

    def map_dumb(self, handle):
        return self.offsets[handle]

    # -- presentation ----------------------------------------------------------
    def create_dumb(self, width, height, bpp=32):
        handle = 100 + len(self.offsets)
        pitch = width * bpp // 8 + self.pitch_padding
        size = -(-pitch * height // PAGE) * PAGE
        self._allocate(handle, size)
        return handle, pitch, size

    def addfb2(self, width, height, pixel_format, handle, pitch):
        assert pixel_format == DRM_FORMAT_XRGB8888
        fb_id = 200 + len(self.framebuffers)
        self.framebuffers[fb_id] = (width, height, handle, pitch)
        return fb_id

    def rmfb(self, fb_id):
        del self.framebuffers[fb_id]

    def destroy_dumb(self, handle):
        self.dumb_destroyed.append(handle)

    def set_crtc(self, crtc_id, fb_id, x, y, connector_ids, mode):
        if self.not_master:
            raise DrmIoctlError("DRM_IOCTL_MODE_SETCRTC failed: Permission denied",
                                errno=errno.EACCES)
        self.crtc_sets.append((crtc_id, fb_id, x, y, list(connector_ids),
                               str(mode) if mode else None))

    def page_flip(self, crtc_id, fb_id, flags, user_data=0):
        if self.flip_busy:
            self.flip_busy = False
            raise DrmIoctlError("DRM_IOCTL_MODE_PAGE_FLIP failed: Device or resource busy",
                                errno=errno.EBUSY)
        assert flags & DRM_MODE_PAGE_FLIP_EVENT
        self.flips.append((crtc_id, fb_id))
        event = ffi.new("struct drm_event_vblank *")
        event.base.type = DRM_EVENT_FLIP_COMPLETE
        event.base.length = ffi.sizeof(event[0])
        event.user_data, event.sequence, event.crtc_id = user_data, len(self.flips), crtc_id
        os.write(self._events_w, bytes(ffi.buffer(event)))

    def read_events(self, timeout):
        ready, _, _ = select.select([self._events_r], [], [], timeout)
        return p.parse_events(os.read(self._events_r, 4096)) if ready else []
