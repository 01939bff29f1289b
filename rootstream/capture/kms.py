"""KMS capture: read the framebuffer a display is scanning out, straight from the kernel.

No compositor involvement and no copy on the normal path: each grab asks
which framebuffer the CRTC's primary plane shows now (page flips change it),
GETFB2 describes it, and the buffer is mapped (PRIME dma-buf, or MAP_DUMB as
a fallback) and handed over as a numpy view.  When a hardware cursor is
visible it lives on its own plane, so the frame is copied once and the cursor
blended in, the way the display shows it.

GETFB2 only returns buffer handles to CAP_SYS_ADMIN (or the DRM master); a
host without it gets the buffers from rootstream-kms-helper (kms_grant.py),
the one program that holds the capability.  Only linear buffers can be read
without the GPU's detiling.  Both are checked at open so the user hears about
them before streaming starts.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rootstream._native import drm as kms
from rootstream._native.drm_abi import (
    DRM_CAP_DUMB_BUFFER,
    DRM_CAP_PRIME,
    DRM_FORMAT_ABGR8888,
    DRM_FORMAT_ARGB8888,
    DRM_FORMAT_MOD_INVALID,
    DRM_FORMAT_MOD_LINEAR,
    DRM_FORMAT_XBGR8888,
    DRM_FORMAT_XRGB8888,
    DRM_MODE_OBJECT_PLANE,
    DRM_PRIME_CAP_EXPORT,
)
from rootstream._native.drm_device import DrmDevice, DrmIoctlError
from rootstream._native.drm_map import BufferMapper, Mapping, plane_view
from rootstream._native.drm_parse import DrmError, Framebuffer
from rootstream.capture import kms_grant
from rootstream.capture.base import CaptureBackend, Pacer, deadline_after
from rootstream.capture.kms_vblank import VblankPacer
from rootstream.errors import CaptureError
from rootstream.frame import CapturedFrame

# DRM fourcc -> CapturedFrame.pixel_format (bytes in memory order: DRM names
# are little-endian 32-bit words, so XRGB8888 is B, G, R, X in memory).
PIXEL_FORMATS = {
    DRM_FORMAT_XRGB8888: "BGRX",
    DRM_FORMAT_ARGB8888: "BGRA",
    DRM_FORMAT_XBGR8888: "RGBX",
    DRM_FORMAT_ABGR8888: "RGBA",
}

OTHER_SOURCE = "or use --source x11"
PRIVILEGE_MESSAGE = "KMS capture needs CAP_SYS_ADMIN: the kernel withheld the framebuffer handles"
GETFB2_MESSAGE = "the kernel has no DRM_IOCTL_MODE_GETFB2 (it needs Linux 5.7 or later)"

# drm_fourcc.h's DRM_FORMAT_MOD_VENDOR_* (the modifier's top byte).
MODIFIER_VENDORS = {
    0x01: "INTEL", 0x02: "AMD", 0x03: "NVIDIA", 0x04: "SAMSUNG", 0x05: "QCOM",
    0x06: "VIVANTE", 0x07: "BROADCOM", 0x08: "ARM", 0x09: "ALLWINNER", 0x0A: "AMLOGIC",
}


def fourcc_name(code: int) -> str:
    """"XR24" for DRM_FORMAT_XRGB8888; hex when the code is not printable."""
    text = code.to_bytes(4, "little").decode("ascii", errors="replace")
    return text if text.isprintable() else f"0x{code:08x}"


def modifier_name(modifier: int) -> str:
    if modifier == DRM_FORMAT_MOD_LINEAR:
        return "linear"
    if modifier == DRM_FORMAT_MOD_INVALID:
        return "modifier unknown"
    vendor = MODIFIER_VENDORS.get(modifier >> 56, f"vendor 0x{modifier >> 56:02x}")
    return f"{vendor} modifier 0x{modifier:016x}"


def privilege_hint() -> str:
    return f"{kms_grant.install_hint()}; {OTHER_SOURCE}"


def check_framebuffer(fb: Framebuffer) -> str:
    """The CapturedFrame pixel format of ``fb``; CaptureError if it cannot be read.

    Layout and format come first, privileges last: a user whose desktop
    scans out tiled buffers must not be sent to grant a capability first,
    only to learn afterwards that capture cannot read the screen anyway.
    """
    fmt = check_layout(fb)
    if fb.handles[0] == 0:
        raise CaptureError(PRIVILEGE_MESSAGE, hint=privilege_hint())
    return fmt


def check_layout(fb: Framebuffer) -> str:
    """check_framebuffer without the privilege check: layout and format."""
    if fb.modifier == DRM_FORMAT_MOD_INVALID:
        raise CaptureError(
            "the driver does not say how the display's framebuffer is laid out (GETFB2 "
            "gave no modifier); KMS capture reads linear buffers only",
            hint=f"KMS capture needs a driver with framebuffer modifiers, {OTHER_SOURCE}",
        )
    if fb.modifier != DRM_FORMAT_MOD_LINEAR:
        raise CaptureError(
            f"the display shows a tiled or compressed framebuffer ({modifier_name(fb.modifier)}); "
            "KMS capture reads linear buffers only",
            hint=f"run the compositor with linear scanout buffers, {OTHER_SOURCE}",
        )
    fmt = PIXEL_FORMATS.get(fb.pixel_format)
    if fmt is None:
        known = ", ".join(fourcc_name(code) for code in PIXEL_FORMATS)
        raise CaptureError(
            f"the display's pixel format {fourcc_name(fb.pixel_format)} is not supported "
            f"(only {known})",
            hint=f"set the desktop to 8 bits per colour, {OTHER_SOURCE}",
        )
    return fmt


def capture_error(exc: DrmError) -> CaptureError:
    """A DRM failure as the CaptureError the user sees, with the x11 alternative."""
    hint = f"{exc.hint}; {OTHER_SOURCE}" if exc.hint else OTHER_SOURCE
    return CaptureError(str(exc), hint=hint, details=exc.details)


# --- cursor ---------------------------------------------------------------

def blend_cursor(canvas: np.ndarray, cursor: np.ndarray, x: int, y: int,
                 blend: str = "Pre-multiplied", swap_rb: bool = False) -> None:
    """Blend a (h, w, 4) BGRA cursor onto a (H, W, 4) canvas at (x, y), clipped.

    ``blend`` is the cursor plane's "pixel blend mode": the kernel default
    "Pre-multiplied" (colour already scaled by alpha, as cursors are made),
    "Coverage" (straight alpha) or "None" (alpha ignored).  ``swap_rb`` when
    the canvas is RGBX.  The canvas's 4th byte is left alone.
    """
    height, width = canvas.shape[:2]
    ch, cw = cursor.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + cw, width), min(y + ch, height)
    if x0 >= x1 or y0 >= y1:
        return
    src = cursor[y0 - y:y1 - y, x0 - x:x1 - x]
    if swap_rb:
        src = src[..., [2, 1, 0, 3]]
    dst = canvas[y0:y1, x0:x1, :3]
    colour = src[..., :3].astype(np.uint16)
    if blend == "None":
        dst[...] = src[..., :3]
        return
    alpha = src[..., 3:4].astype(np.uint16)
    if blend == "Coverage":
        colour = (colour * alpha + 127) // 255
    out = colour + (dst.astype(np.uint16) * (255 - alpha) + 127) // 255
    np.minimum(out, 255, out=out)
    dst[...] = out


@dataclass(frozen=True, slots=True)
class CursorLayer:
    pixels: np.ndarray  # (h, w, 4) BGRA, copied out of the cursor buffer
    x: int
    y: int
    blend: str


class KmsCapture(CaptureBackend):
    """Capture a display through DRM/KMS.

    ``device``: "/dev/dri/card0", None for the first card with outputs, or a
    DrmDevice already opened with ``open_card`` (the capture then owns it).
    ``connector``: "HDMI-A-1", or None for the first connected, lit one;
    ``output`` is the same, under the name every screen backend takes
    (``rootstream host --output``).
    ``cursor``: blend the hardware cursor into frames (costs one frame copy
    while it is visible).
    ``vblank_sync``: grab right after the CRTC's next vblank (kms_vblank.py),
    so a page flip is captured at once instead of at the next slot.
    """

    name = "kms"

    def __init__(self, device: str | DrmDevice | None = None, connector: str | None = None,
                 fps: float = 60, cursor: bool = True, output: str | None = None,
                 vblank_sync: bool = False):
        super().__init__()
        if connector and output and connector != output:
            raise CaptureError("give a connector or an output, not both",
                               details=[f"connector {connector!r}, output {output!r}"])
        connector = connector or output
        self._device: DrmDevice | None = None
        self._mapper: BufferMapper | None = None
        self._exported: kms_grant.ExportedPlanes | None = None  # buffers via the helper
        self._canvas: np.ndarray | None = None
        self.cursor_note = ""  # "cursor not shown: <why>", or "" when it is shown
        self._pacer = Pacer(fps)
        self._want_cursor = cursor
        self._fb_size = (0, 0)
        try:
            self._device, self.output = kms.open_output(
                device, lambda topology: kms.choose_capture_output(topology, connector))
            self._mapper = BufferMapper(self._device)
            self._set_viewport(self.output.crtc)
            self._check_current()
            if vblank_sync:
                self._pacer = VblankPacer(self._device, self.output.crtc.id, fps)
        except DrmError as exc:
            self.close()
            raise capture_error(exc) from exc
        except BaseException:
            self.close()
            raise
        crtc = self.output.crtc
        if not cursor:
            self.cursor_note = "cursor not shown: disabled"
        elif self.output.cursor is None:
            self.cursor_note = (f"cursor not shown: CRTC {crtc.id} has no cursor plane "
                                "(a software cursor is already in the picture)")

    # -- opening -----------------------------------------------------------
    def _check_current(self) -> None:
        """Fail at open, not mid-stream, on privileges, tiling or format."""
        try:
            fb = self._device.getfb2(self._primary_fb_id())
        except DrmIoctlError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOTTY):  # the ioctl does not exist
                raise CaptureError(GETFB2_MESSAGE, hint=OTHER_SOURCE) from exc
            raise capture_error(exc) from exc
        except DrmError as exc:
            raise capture_error(exc) from exc
        try:
            self.pixel_format = check_layout(fb)
            if fb.handles[0] == 0:  # withheld: this process lacks CAP_SYS_ADMIN
                self._exported = self._start_helper()
        finally:
            self._mapper.close_handles(fb)

    def _start_helper(self) -> kms_grant.ExportedPlanes:
        """rootstream-kms-helper, which holds CAP_SYS_ADMIN, hands the buffers over."""
        exported = kms_grant.start_for(self._device.path, self._mapper)
        if exported is None:
            raise CaptureError(PRIVILEGE_MESSAGE, hint=privilege_hint())
        try:
            exported.read(self.output.primary.plane.id)  # fail at open, not mid-stream
        except DrmError as exc:
            exported.close()
            raise capture_error(exc) from exc
        return exported

    def _primary_fb_id(self) -> int:
        return self._device.plane(self.output.primary.plane.id, formats=False).fb_id

    def _primary_buffer(self) -> tuple[Framebuffer | None, Mapping | None]:
        """What the primary plane shows: (fb, None) from GETFB2 here, still to be
        mapped; (fb, mapping) through the helper; (None, None) when blanked."""
        if self._exported is not None:
            return self._exported.read(self.output.primary.plane.id) or (None, None)
        fb_id = self._primary_fb_id()
        return (self._device.getfb2(fb_id), None) if fb_id else (None, None)

    # -- grabbing ----------------------------------------------------------
    def grab(self, timeout: float | None = None, *, force: bool = False) -> CapturedFrame | None:
        if self._device is None:
            raise CaptureError("KMS capture is closed")
        slot = self._pacer.wait(deadline_after(timeout))
        if slot is None:
            return None
        self._mapper.end_read()  # the previous frame's read window ends here
        try:
            fb, mapping = self._primary_buffer()
        except DrmIoctlError as exc:
            if exc.errno == errno.ENOENT:  # the fb was freed between two ioctls: next slot
                self._pacer.taken(slot, time.monotonic_ns())
                return None
            raise capture_error(exc) from exc
        except DrmError as exc:
            raise capture_error(exc) from exc
        if fb is None:  # the display is blanked: nothing to show
            self._pacer.taken(slot, time.monotonic_ns())
            return None
        captured = time.monotonic_ns()
        try:
            self.pixel_format = check_framebuffer(fb) if mapping is None else check_layout(fb)
        except CaptureError:
            self._mapper.close_handles(fb)
            raise
        try:
            if mapping is None:
                mapping = self._mapper.map(fb)
            view = self._view(mapping, fb)
            if self._want_cursor and self.output.cursor is not None:
                view = self._with_cursor(view)
        except DrmError as exc:
            raise capture_error(exc) from exc
        self._pacer.taken(slot, captured)
        return self._frame(view, captured)

    def _set_viewport(self, crtc) -> None:
        if crtc.mode is None:
            raise DrmError(f"CRTC {crtc.id} was switched off")
        self._viewport = (crtc.x, crtc.y, crtc.mode.width, crtc.mode.height)
        self.width, self.height = crtc.mode.width, crtc.mode.height

    def _view(self, mapping, fb: Framebuffer) -> np.ndarray:
        if (fb.width, fb.height) != self._fb_size:
            # A framebuffer of another size means a mode change (or the first
            # frame): the CRTC's corner and size are re-read, not assumed.
            if self._fb_size != (0, 0):
                self._set_viewport(self._device.crtc(self.output.crtc.id))
            self._fb_size = (fb.width, fb.height)
        x, y, w, h = self._viewport
        return plane_view(mapping, fb, x, y, w, h)

    # -- cursor ------------------------------------------------------------
    def _cursor_layer(self) -> CursorLayer | None:
        info = self.output.cursor
        plane = self._device.plane(info.plane.id, formats=False)
        if plane.fb_id == 0 or plane.crtc_id != self.output.crtc.id:
            self.cursor_note = "cursor not shown: the cursor is hidden"
            return None
        if "CRTC_X" not in info.prop_ids or "CRTC_Y" not in info.prop_ids:
            self.cursor_note = ("cursor not shown: the driver does not report the cursor's "
                                "position (CRTC_X/CRTC_Y need atomic modesetting)")
            return None
        values = self._device.object_properties(info.plane.id, DRM_MODE_OBJECT_PLANE)
        x, y = (_as_signed32(values.get(info.prop_ids[k], 0)) for k in ("CRTC_X", "CRTC_Y"))
        if self._exported is None:
            fb, mapping = self._device.getfb2(plane.fb_id), None
        else:
            shown = self._exported.read(info.plane.id)
            if shown is None:  # hidden since the plane was read
                self.cursor_note = "cursor not shown: the cursor is hidden"
                return None
            fb, mapping = shown
        if fb.pixel_format != DRM_FORMAT_ARGB8888 or fb.modifier != DRM_FORMAT_MOD_LINEAR:
            self._mapper.close_handles(fb)
            self.cursor_note = (f"cursor not shown: its buffer is {fourcc_name(fb.pixel_format)} "
                                f"with {modifier_name(fb.modifier)}, not linear ARGB8888")
            return None
        if mapping is None:
            mapping = self._mapper.map(fb)
        rows = plane_view(mapping, fb)
        pixels = rows[:, :fb.width * 4].reshape(fb.height, fb.width, 4).copy()
        self.cursor_note = ""
        return CursorLayer(pixels, x, y, info.enum_names.get("pixel blend mode")
                           or "Pre-multiplied")

    def _with_cursor(self, view: np.ndarray) -> np.ndarray:
        try:
            layer = self._cursor_layer()
        except DrmError as exc:
            # The cursor is a nicety: a cursor buffer freed mid-read (the
            # pointer changed shape) costs it for one frame, never the frame.
            self.cursor_note = f"cursor not shown: {exc}"
            return view
        if layer is None:
            return view
        if self._canvas is None or self._canvas.shape != view.shape:
            self._canvas = np.empty(view.shape, np.uint8)
        np.copyto(self._canvas, view)
        stride = view.shape[1]
        canvas = self._canvas.reshape(view.shape[0], stride // 4, 4)[:, :self.width]
        blend_cursor(canvas, layer.pixels, layer.x, layer.y, layer.blend,
                     swap_rb=self.pixel_format.startswith("RGB"))
        return self._canvas

    # -- the rest ----------------------------------------------------------
    def describe(self) -> str:
        text = f"{self.output.connector.name} on {self._device.path}, " + super().describe()
        if self._exported is not None:
            text += f"; buffers from {self._exported.helper.path}"
        if self._mapper is not None and self._mapper.prime_failed:
            text += f"; {self._mapper.prime_failed}"
        if self.cursor_note:
            text += f"; {self.cursor_note}"
        return text

    def close(self) -> None:
        if self._exported is not None:
            self._exported.close()
            self._exported = None
        if self._mapper is not None:
            self._mapper.close()
            self._mapper = None
        if self._device is not None:
            self._device.close()
            self._device = None

    @classmethod
    def probe(cls, device: str | DrmDevice | None = None, connector: str | None = None,
              record_dir: str | os.PathLike | None = None) -> list[tuple[str, bool, str]]:
        """Every step of KMS capture once, with what it found, for ``rootstream doctor``.

        ``record_dir``: also write every kernel reply there as a ``<name>.bin``
        image, the format of tests/data/drm/, to turn a real card into test data.
        """
        return probe_steps(device, connector, record_dir)


def _as_signed32(value: int) -> int:
    """CRTC_X/Y come back as the u64 image of a signed value."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def probe_steps(device: str | DrmDevice | None = None, connector: str | None = None,
                record_dir: str | os.PathLike | None = None) -> list[tuple[str, bool, str]]:
    """(step, ok, what it found) for each stage of KMS capture, stopping where one
    that the next ones need fails.  ``device`` may be an open DrmDevice (consumed)."""
    steps: list[tuple[str, bool, str]] = []

    def step(name: str, action, describe=str):
        try:
            found = action()
        except (DrmError, CaptureError, OSError) as exc:
            hint = getattr(exc, "hint", "")
            steps.append((name, False, f"{exc}" + (f" (hint: {hint})" if hint else "")))
            return None
        steps.append((name, True, describe(found)))
        return found

    if isinstance(device, DrmDevice):
        dev = device
        steps.append(("open", True, f"{dev.path} (opened by the caller)"))
    else:
        if step("cards", lambda: ", ".join(str(p) for p in kms.find_cards())) is None:
            return steps
        dev = step("open", lambda: kms.open_card(device, on_reply=_recorder(record_dir)),
                   lambda d: f"{d.path}, universal planes, atomic {'yes' if d.atomic else 'no'}")
        if dev is None:
            return steps
    handed_over = False
    try:
        step("driver", lambda: _version_line(dev))
        step("capabilities", lambda: _caps_line(dev))
        topology = step("topology", lambda: kms.read_topology(dev),
                        lambda t: "; ".join(kms.describe_connectors(t)))
        if topology is None:
            return steps
        output = step("output", lambda: kms.choose_capture_output(topology, connector),
                      _output_line)
        if output is None:
            return steps
        step("scanout formats", lambda: _in_formats_line(dev, output.primary))
        fb = step("framebuffer", lambda: dev.getfb2(
            dev.plane(output.primary.plane.id, formats=False).fb_id), _fb_line)
        if fb is None:
            return steps
        mapper = BufferMapper(dev)
        try:
            if fb.handles[0] == 0:
                # No CAP_SYS_ADMIN here: the helper that has it must do the reading.
                if (step("readable", lambda: check_layout(fb)) is None
                        or step("kms helper", lambda: _helper_line(dev, output)) is None):
                    return steps
            elif step("readable", lambda: check_framebuffer(fb)) is None:
                mapper.close_handles(fb)
                return steps
            else:
                step("map", lambda: _map_line(mapper, fb))
                step("map-dumb fallback", lambda: _dumb_line(dev, output))
        finally:
            mapper.close()
        handed_over = True  # the capture below owns the device and closes it
        step("grab", lambda: _grab_line(dev, connector))
    finally:
        if not handed_over:
            dev.close()
    return steps


def _recorder(record_dir: str | os.PathLike | None):
    """An on_reply callback writing each reply image to ``record_dir``, or None."""
    if record_dir is None:
        return None
    folder = Path(record_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return lambda name, image: (folder / f"{name}.bin").write_bytes(image)


def _output_line(output: kms.CaptureOutput) -> str:
    cursor = output.cursor.plane.id if output.cursor else "none"
    return (f"{output.connector.name} on CRTC {output.crtc.id} ({output.crtc.mode}), "
            f"primary plane {output.primary.plane.id}, cursor plane {cursor}")


def _fb_line(fb: Framebuffer) -> str:
    return (f"fb {fb.id} {fb.width}x{fb.height} {fourcc_name(fb.pixel_format)} "
            f"pitch {fb.pitches[0]} {modifier_name(fb.modifier)} handle {fb.handles[0]}")


def _version_line(dev: DrmDevice) -> str:
    v = dev.version()
    return f"{v.name} {v.major}.{v.minor}.{v.patchlevel} ({v.description})"


def _caps_line(dev: DrmDevice) -> str:
    prime = dev.get_cap(DRM_CAP_PRIME)
    return (f"dumb buffers {'yes' if dev.get_cap(DRM_CAP_DUMB_BUFFER) else 'no'}, "
            f"PRIME export {'yes' if prime & DRM_PRIME_CAP_EXPORT else 'no'}, "
            f"atomic {'yes' if dev.atomic else 'no'}")


def _in_formats_line(dev: DrmDevice, primary: kms.PlaneInfo) -> str:
    from rootstream._native.drm_parse import parse_format_modifier_blob

    blob_id = primary.props.get("IN_FORMATS")
    if not blob_id:
        return "no IN_FORMATS property (implicit modifiers only)"
    table = parse_format_modifier_blob(dev.property_blob(blob_id))
    linear = [fourcc_name(f) for f, mods in table.items()
              if DRM_FORMAT_MOD_LINEAR in mods and f in PIXEL_FORMATS]
    return f"{len(table)} formats; linear 32-bit: {', '.join(linear) or 'none'}"


def _map_line(mapper: BufferMapper, fb: Framebuffer) -> str:
    mapping = mapper.map(fb)
    view = plane_view(mapping, fb)
    mean = float(view[:, :fb.width * 4].mean())
    note = f" ({mapper.prime_failed})" if mapper.prime_failed else ""
    return f"mapped {mapping.size} bytes via {mapper.last_path}{note}; mean byte {mean:.1f}"


def _helper_line(dev: DrmDevice, output: kms.CaptureOutput) -> str:
    usable, found = kms_grant.helper_state()
    if not usable:
        raise CaptureError(PRIVILEGE_MESSAGE, hint=found)
    mapper = BufferMapper(dev)
    exported = kms_grant.start_for(dev.path, mapper)
    if exported is None:
        raise CaptureError(f"{dev.path} is not a /dev/dri/cardN the helper can open")
    try:
        shown = exported.read(output.primary.plane.id)
        if shown is None:
            return f"{found}; the primary plane shows nothing now"
        return f"{found}; exported {_fb_line(shown[0])} as a dma-buf of {shown[1].size} bytes"
    finally:
        exported.close()
        mapper.close()


def _dumb_line(dev: DrmDevice, output: kms.CaptureOutput) -> str:
    fb = dev.getfb2(dev.plane(output.primary.plane.id, formats=False).fb_id)
    mapper = BufferMapper(dev)
    mapper.prime_failed = "forced for the probe"
    try:
        return _map_line(mapper, fb)
    except DrmError as exc:
        return f"not available ({exc}); PRIME is required on this driver"
    finally:
        mapper.close()


def _grab_line(device: DrmDevice, connector: str | None) -> str:
    with KmsCapture(device, connector) as capture:
        frame = capture.grab(timeout=1.0)
        if frame is None:
            return "no frame within 1 s (display blanked?)"
        return (f"frame {frame.width}x{frame.height} {frame.pixel_format} stride {frame.stride}; "
                f"{capture.cursor_note or 'cursor shown'}")


__all__ = ["KmsCapture", "blend_cursor", "check_framebuffer", "fourcc_name", "modifier_name",
           "probe_steps"]
