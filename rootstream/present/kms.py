"""KMS presenter: decoded frames straight to a display, without X11 or Wayland.

For a client booted to a text console.  Two dumb buffers (CPU-mapped
scanout memory) take turns: a frame is scaled to BGRX into the one not on
screen, then a page flip swaps them at the next vblank.  The flip's
completion event is read from the card fd before the next frame is drawn,
which paces presentation to the display and keeps the buffer being scanned
out untouched (no tearing).

Opening sets the mode (SETCRTC), which only the DRM master may do: on a
machine running a desktop session that is the compositor, so this backend
is for consoles.  The CRTC's previous configuration is restored on close.
There is no input here: a bare console has no window events, so
``poll_events()`` always returns [] (keyboard and mouse would come from evdev,
which this presenter does not read).
"""

from __future__ import annotations

import errno
import mmap
import time
from dataclasses import dataclass

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from rootstream._native import drm as kms
from rootstream._native.drm_abi import (
    DRM_CAP_DUMB_BUFFER,
    DRM_EVENT_FLIP_COMPLETE,
    DRM_FORMAT_XRGB8888,
    DRM_MODE_PAGE_FLIP_EVENT,
)
from rootstream._native.drm_device import DrmDevice, DrmIoctlError
from rootstream._native.drm_parse import Crtc, DrmError, Mode
from rootstream.errors import PresentError
from rootstream.present.base import Presenter, PresenterEvent, Rect, letterbox

OTHER_PRESENTER = "or use --present sdl"
MASTER_MESSAGE = "cannot set the display mode: another program is the DRM master"
MASTER_HINT = ("run the client from a text console (Ctrl+Alt+F3) with no desktop session "
               f"on this GPU, {OTHER_PRESENTER}")
FLIP_TIMEOUT = 0.5  # s; a display that never completes a flip is off or gone


def present_error(exc: DrmError) -> PresentError:
    hint = f"{exc.hint}; {OTHER_PRESENTER}" if exc.hint else OTHER_PRESENTER
    return PresentError(str(exc), hint=hint, details=exc.details)


@dataclass(slots=True)
class DumbBuffer:
    """One CPU-mapped scanout buffer and the framebuffer wrapping it."""

    handle: int
    pitch: int
    size: int
    fb_id: int
    region: mmap.mmap
    pixels: np.ndarray  # (height, pitch) uint8, writable view of region
    painted: Rect | None = None  # where the last picture went; bars around it are black


def draw_frame(reformatter: VideoReformatter, frame: av.VideoFrame, pixels: np.ndarray,
               box: Rect, painted: Rect | None) -> Rect:
    """Scale ``frame`` to BGRX into ``box`` of ``pixels`` (height, pitch); returns ``box``.

    The bars around the picture are cleared only when the box moved since
    this buffer was last painted (``painted``), so a steady stream writes the
    picture rows and nothing else.
    """
    if painted != box:
        pixels[...] = 0
    if box.w <= 0 or box.h <= 0:
        return box
    scaled = reformatter.reformat(frame, format="bgr0", width=box.w, height=box.h)
    plane = scaled.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(box.h, plane.line_size)
    # Row by row into the buffer's pitch; numpy does it as one strided copy.
    pixels[box.y:box.y + box.h, box.x * 4:(box.x + box.w) * 4] = rows[:, :box.w * 4]
    return box


class KmsPresenter(Presenter):
    """Show frames on a display through DRM/KMS.

    ``device``: "/dev/dri/card0", None for the first card with outputs, or a
    DrmDevice opened with ``open_card`` (the presenter then owns it);
    ``connector``: "HDMI-A-1" or None for the first connected one;
    ``mode``: "fit" (the smallest mode holding the stream, else the current
    one) or "current" (never change the display's timing).

    ``title`` and ``fullscreen`` mean nothing on a bare display (it is always
    the whole screen); ``vsync`` is always on: a page flip happens at vblank.
    """

    name = "kms"

    def __init__(self, *, width: int, height: int, title: str = "rootstream",
                 fullscreen: bool = True, vsync: bool = True,
                 device: str | DrmDevice | None = None,
                 connector: str | None = None, mode: str = "fit"):
        super().__init__(width=width, height=height)
        if mode not in ("fit", "current"):
            raise PresentError(f"unknown KMS mode policy {mode!r}", hint="use fit or current")
        self._device: DrmDevice | None = None
        self._buffers: list[DumbBuffer] = []
        self._saved: Crtc | None = None  # the CRTC as it was; restored once we changed it
        self._saved_connectors: list[int] = []
        self._flip_pending = False
        self._front = 0
        self._reformatter = VideoReformatter()
        self.frames_dropped = 0  # frames whose flip the kernel refused (display busy/off)
        self.restore_note = ""
        try:
            self._open(device, connector, mode)
        except DrmError as exc:
            self.close()
            raise present_error(exc) from exc
        except BaseException:
            self.close()
            raise

    @classmethod
    def probe(cls, device: str | None = None) -> str:
        """Empty if a card with a connected display opens here, else why not.

        Whether this process may become DRM master (no desktop session
        running) is only known when the mode is set.
        """
        try:
            with kms.open_card(device) as card:
                topology = kms.read_topology(card)
                if not any(c.connected for c in topology.connectors):
                    return "no display is connected"
                if not card.get_cap(DRM_CAP_DUMB_BUFFER):
                    return f"{card.path} has no dumb buffers"
        except DrmError as exc:
            return f"{exc}; {exc.hint}" if exc.hint else str(exc)
        return ""

    # -- opening -----------------------------------------------------------
    def _open(self, device: str | DrmDevice | None, connector: str | None, policy: str) -> None:
        def choose(topology: kms.Topology):
            output = kms.choose_present_output(topology, connector, self.width, self.height)
            return topology, output

        self._device, (topology, output) = kms.open_output(device, choose)
        dev = self._device
        if not dev.get_cap(DRM_CAP_DUMB_BUFFER):
            raise DrmError(f"{dev.path} cannot allocate dumb buffers")
        self._saved = topology.crtcs[output.crtc_id]
        self._saved_connectors = [
            c.id for c in topology.connectors
            if (enc := topology.encoders.get(c.encoder_id)) and enc.crtc_id == output.crtc_id
        ]
        mode = output.mode
        if policy == "current" and self._saved.mode is not None:
            mode = self._saved.mode
        self.connector_name, self.crtc_id, self.mode = output.connector.name, output.crtc_id, mode
        self._connector_id = output.connector.id
        self._buffers = [self._new_buffer(mode) for _ in range(2)]
        saved, self._saved = self._saved, None  # nothing to restore until SETCRTC succeeds
        try:
            dev.set_crtc(self.crtc_id, self._buffers[0].fb_id, 0, 0, [self._connector_id], mode)
        except DrmIoctlError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise PresentError(MASTER_MESSAGE, hint=MASTER_HINT) from exc
            raise
        self._saved = saved

    def _new_buffer(self, mode: Mode) -> DumbBuffer:
        dev = self._device
        handle, pitch, size = dev.create_dumb(mode.width, mode.height, 32)
        try:
            fb_id = dev.addfb2(mode.width, mode.height, DRM_FORMAT_XRGB8888, handle, pitch)
            try:
                offset = dev.map_dumb(handle)
                region = mmap.mmap(dev.fd, size, mmap.MAP_SHARED,
                                   mmap.PROT_READ | mmap.PROT_WRITE, offset=offset)
            except BaseException:
                dev.rmfb(fb_id)
                raise
        except BaseException:
            dev.destroy_dumb(handle)
            raise
        pixels = np.frombuffer(region, np.uint8, pitch * mode.height).reshape(mode.height, pitch)
        pixels[...] = 0
        return DumbBuffer(handle, pitch, size, fb_id, region, pixels)

    # -- presenting --------------------------------------------------------
    def present(self, frame: av.VideoFrame) -> int:
        if self._device is None:
            raise PresentError("the KMS presenter is closed")
        self.width, self.height = frame.width, frame.height
        self._wait_flip(FLIP_TIMEOUT)
        back = self._buffers[1 - self._front]
        box = letterbox(frame.width, frame.height, self.mode.width, self.mode.height)
        back.painted = draw_frame(self._reformatter, frame, back.pixels, box, back.painted)
        try:
            self._device.page_flip(self.crtc_id, back.fb_id, DRM_MODE_PAGE_FLIP_EVENT,
                                   user_data=back.fb_id)
        except DrmIoctlError as exc:
            if exc.errno in (errno.EBUSY, errno.EINVAL):
                # EBUSY: a flip is still queued (a missed event); EINVAL: the CRTC
                # is off (DPMS).  Drop this frame; the next one tries again.
                self.frames_dropped += 1
                return time.monotonic_ns()
            raise present_error(exc) from exc
        self._flip_pending = True
        self._front = 1 - self._front
        self.frames_presented += 1
        return time.monotonic_ns()

    def _wait_flip(self, timeout: float) -> None:
        """Read events until our flip completed, or give up after ``timeout``."""
        deadline = time.monotonic() + timeout
        while self._flip_pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._flip_pending = False  # the display is off; do not wait forever
                return
            try:
                events = self._device.read_events(remaining)
            except DrmError as exc:
                raise present_error(exc) from exc
            if any(e.type == DRM_EVENT_FLIP_COMPLETE for e in events):
                self._flip_pending = False

    # -- the Presenter interface ------------------------------------------
    def poll_events(self) -> list[PresenterEvent]:
        return []  # a console has no window: no resize, no close, no keys here

    def toggle_fullscreen(self) -> bool:
        return True  # a KMS output is always the whole display

    def window_size(self) -> tuple[int, int]:
        return self.mode.width, self.mode.height

    def read_pixels(self) -> np.ndarray:
        front = self._buffers[self._front]
        rows = front.pixels[:, :self.mode.width * 4]
        return rows.reshape(self.mode.height, self.mode.width, 4).copy()

    def describe(self) -> str:
        return f"{self.connector_name} CRTC {self.crtc_id} {self.mode}"

    def close(self) -> None:
        dev = self._device
        if dev is None:
            return
        try:
            if self._flip_pending:
                self._wait_flip(FLIP_TIMEOUT)
            self._restore()
            for buf in self._buffers:
                self._free(buf)
            self._buffers = []
        finally:
            dev.close()
            self._device = None

    def _restore(self) -> None:
        saved = self._saved
        if saved is None or not self._buffers:
            return
        try:
            if saved.mode is not None and saved.fb_id:
                self._device.set_crtc(saved.id, saved.fb_id, saved.x, saved.y,
                                      self._saved_connectors, saved.mode)
            else:
                self._device.set_crtc(saved.id, 0, 0, 0, [], None)
        except DrmError as exc:
            # The previous framebuffer may be gone; the console's fbdev
            # emulation redraws itself when we close the card.
            self.restore_note = f"could not restore CRTC {saved.id}: {exc}"

    def _free(self, buf: DumbBuffer) -> None:
        buf.pixels = np.empty((0, 0), np.uint8)
        try:
            buf.region.close()
        except BufferError:
            pass  # a read_pixels() copy never holds it; a caller's view would
        for action in (lambda: self._device.rmfb(buf.fb_id),
                       lambda: self._device.destroy_dumb(buf.handle)):
            try:
                action()
            except DrmError:
                pass  # closing the card fd frees whatever is left
