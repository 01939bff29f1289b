"""`rootstream doctor --kms`: every step of KMS capture once, and what each found.

Each step is one thing capture needs (the device, its DRM version and
capabilities, the output, its framebuffer, mapping it, a grab), tried in
order until one that the next ones need fails, so a user sees exactly where
capture breaks on their machine.  With ``record_dir`` every kernel reply is
saved, the format of tests/data/drm/, to turn a real card into test data.
"""

from __future__ import annotations

import os
from pathlib import Path

from rootstream._native import drm as kms
from rootstream._native.drm_abi import (
    DRM_CAP_DUMB_BUFFER,
    DRM_CAP_PRIME,
    DRM_FORMAT_MOD_LINEAR,
    DRM_PRIME_CAP_EXPORT,
)
from rootstream._native.drm_device import DrmDevice
from rootstream._native.drm_map import BufferMapper, plane_view
from rootstream._native.drm_parse import DrmError, Framebuffer
from rootstream.capture import kms_grant
from rootstream.capture.kms import (
    PIXEL_FORMATS,
    PRIVILEGE_MESSAGE,
    KmsCapture,
    check_framebuffer,
    check_layout,
    fourcc_name,
    modifier_name,
)
from rootstream.errors import CaptureError


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


__all__ = ["probe_steps"]
