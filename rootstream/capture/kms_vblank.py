"""Page-flip-synchronised pacing for KMS capture.

A compositor flips to a new picture at a vblank.  A capture slot that falls
just before the flip grabs the old picture, and the new one waits up to a
whole period for the next slot: half a frame of added latency on average.
Waiting after each slot for the CRTC's next vblank (DRM_IOCTL_WAIT_VBLANK,
which needs no DRM master) puts every grab just after a flip, when the plane
shows the newest picture.  The wait costs at most one refresh period, and
vblanks come whether or not the screen changes, so a still screen is still
grabbed on the pacer's cadence.
"""

from __future__ import annotations

from rootstream._native.drm_device import DrmDevice
from rootstream._native.drm_parse import DrmError
from rootstream.capture.base import Pacer


class VblankPacer:
    """A Pacer whose slots end at the CRTC's next vblank."""

    def __init__(self, device: DrmDevice, crtc_id: int, fps: float):
        self._pacer = Pacer(fps)
        self._device = device
        self._crtc_index = device.resources().crtc_ids.index(crtc_id)
        self.last_vblank: tuple[int, int] | None = None  # (count, CLOCK_MONOTONIC ns)
        self.note = ""  # why the last slot was not synchronised, or ""

    def wait(self, deadline_ns: int | None) -> int | None:
        slot = self._pacer.wait(deadline_ns)
        if slot is None:
            return None
        try:
            self.last_vblank = self._device.wait_vblank(self._crtc_index)
            self.note = ""
        except DrmError as exc:
            # A CRTC switched off (DPMS) has no vblanks: grab on the slot alone,
            # as without synchronisation, and try again next slot.
            self.last_vblank = None
            self.note = f"not synchronised to vblank: {exc}"
        return slot

    def taken(self, slot_ns: int, captured_ns: int) -> None:
        self._pacer.taken(slot_ns, captured_ns)
