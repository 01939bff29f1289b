"""DRM/KMS for capture and presentation: finding the card, the output and its planes.

The layers, bottom up:

- drm_abi / drm_ioctl: the kernel's structs for cffi and the request numbers;
- drm_device: one method per ioctl (thin), producing reply images;
- drm_parse: pure parsers for those images;
- this module: opening a card with errors a user can act on, reading the
  card's topology into one snapshot, and the pure decisions on it (which
  connector, which CRTC, which planes, which mode).

Every decision function takes a :class:`Topology` and returns plain data, so
tests drive them with recorded replies from tests/data/drm/.
"""

from __future__ import annotations

import errno as errno_codes
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from rootstream._native.drm_abi import (
    DRM_CLIENT_CAP_ATOMIC,
    DRM_CLIENT_CAP_UNIVERSAL_PLANES,
    DRM_MODE_OBJECT_PLANE,
    DRM_MODE_PROP_EXTENDED_TYPE,
    DRM_MODE_PROP_SIGNED_RANGE,
    PLANE_TYPE_CURSOR,
    PLANE_TYPE_PRIMARY,
)
from rootstream._native.drm_device import DrmDevice, DrmIoctlError
from rootstream._native.drm_parse import (
    CardResources,
    Connector,
    Crtc,
    DrmError,
    Encoder,
    Mode,
    Plane,
    Property,
)

DRI_DIR = Path("/dev/dri")
T = TypeVar("T")

# Fixed messages and hints, shared by capture and presentation (each adds
# its own alternative backend to the hint).
NO_DRI_MESSAGE = "no DRM device: /dev/dri does not exist"
NO_DRI_HINT = "KMS needs a GPU with a kernel modesetting driver loaded"
NO_CARD_MESSAGE = "no DRM card: /dev/dri has no card* device"
ACCESS_HINT = (
    "add the user to the video group (sudo usermod -aG video $USER, then log in again) "
    "and install udev/60-rootstream.rules"
)
NOT_KMS_MESSAGE = "no display outputs: {path} is a render-only device"


class CardSource(Protocol):
    """What read_topology needs: DrmDevice, or recorded replies in tests."""

    def resources(self) -> CardResources: ...
    def connector(self, connector_id: int) -> Connector: ...
    def encoder(self, encoder_id: int) -> Encoder: ...
    def crtc(self, crtc_id: int) -> Crtc: ...
    def plane_resources(self) -> tuple[int, ...]: ...
    def plane(self, plane_id: int) -> Plane: ...
    def object_properties(self, obj_id: int, obj_type: int) -> dict[int, int]: ...
    def property(self, prop_id: int) -> Property: ...


# --- opening a card -------------------------------------------------------

def find_cards(dri_dir: Path = DRI_DIR) -> list[Path]:
    """/dev/dri/card0, card1, ... in numeric order (render nodes cannot modeset)."""
    if not dri_dir.is_dir():
        raise DrmError(NO_DRI_MESSAGE, hint=NO_DRI_HINT)
    cards = [p for p in dri_dir.iterdir() if re.fullmatch(r"card\d+", p.name)]
    if not cards:
        raise DrmError(NO_CARD_MESSAGE, hint=NO_DRI_HINT)
    return sorted(cards, key=lambda p: int(p.name[4:]))


def open_card(path: str | os.PathLike | None = None, *, dri_dir: Path = DRI_DIR,
              on_reply: Callable[[str, bytes], None] | None = None) -> DrmDevice:
    """Open ``path``, or the first card with display outputs.

    Sets the universal-planes capability (primary and cursor planes become
    visible) and, where the driver is atomic, the atomic one (plane positions
    such as CRTC_X become readable); neither needs DRM master.
    """
    device, _ = open_output(path, None, dri_dir=dri_dir, on_reply=on_reply)
    return device


def open_output(device: str | os.PathLike | DrmDevice | None,
                choose: Callable[[Topology], T] | None, *, dri_dir: Path = DRI_DIR,
                on_reply: Callable[[str, bytes], None] | None = None
                ) -> tuple[DrmDevice, T | None]:
    """The first card (``device``, or each of /dev/dri/card* in turn) that opens
    and on whose topology ``choose`` succeeds, with what ``choose`` returned.

    On a machine with two GPUs the display may hang off either, so without a
    named device every card is tried; the error then lists why each failed.
    A DrmDevice passed in is owned from here on: closed if ``choose`` fails.
    """
    if isinstance(device, DrmDevice):
        return device, _choose_on(device, choose)
    if device is not None:
        card = _open_one(Path(device), on_reply)
        return card, _choose_on(card, choose)
    failures: list[tuple[Path, DrmError]] = []
    for path in find_cards(dri_dir):
        try:
            card = _open_one(path, on_reply)
            return card, _choose_on(card, choose)
        except DrmError as exc:
            failures.append((path, exc))
    first = failures[0][1]  # find_cards never returns an empty list
    details = [f"{path}: {exc}" for path, exc in failures]
    if len(failures) == 1:
        details = first.details or details
    raise DrmError(str(first), hint=first.hint, details=details)


def _choose_on(card: DrmDevice, choose: Callable[[Topology], T] | None) -> T | None:
    if choose is None:
        return None
    try:
        return choose(read_topology(card))
    except BaseException:
        card.close()
        raise


def _open_one(path: Path, on_reply) -> DrmDevice:
    try:
        device = DrmDevice(str(path), on_reply=on_reply)
    except DrmIoctlError as exc:
        if exc.errno in (errno_codes.EACCES, errno_codes.EPERM):
            raise DrmError(f"cannot open {path}: permission denied", hint=ACCESS_HINT) from exc
        if exc.errno == errno_codes.ENOENT:
            if not path.parent.exists():
                raise DrmError(NO_DRI_MESSAGE, hint=NO_DRI_HINT) from exc
            raise DrmError(f"no DRM device at {path}", hint=NO_DRI_HINT) from exc
        raise DrmError(f"cannot open {path}: {os.strerror(exc.errno)}",
                       hint=NO_DRI_HINT) from exc
    try:
        if not device.set_client_cap(DRM_CLIENT_CAP_UNIVERSAL_PLANES):
            raise DrmError(f"{path}: the kernel does not expose universal planes (before 3.15)")
        device.atomic = device.set_client_cap(DRM_CLIENT_CAP_ATOMIC)
        resources = device.resources()
        if not resources.connector_ids or not resources.crtc_ids:
            raise DrmError(NOT_KMS_MESSAGE.format(path=path))
    except DrmIoctlError as exc:
        device.close()
        if exc.errno == errno_codes.ENOTTY:
            raise DrmError(f"{path} is not a DRM device", hint=NO_DRI_HINT) from exc
        if exc.errno in (errno_codes.EOPNOTSUPP, errno_codes.EINVAL):
            raise DrmError(NOT_KMS_MESSAGE.format(path=path)) from exc
        raise DrmError(f"{path}: {exc}") from exc
    except DrmError:
        device.close()
        raise
    return device


# --- the topology snapshot ------------------------------------------------

@dataclass(frozen=True, slots=True)
class PlaneInfo:
    plane: Plane
    type: int | None  # PLANE_TYPE_*, None if the driver has no "type" property
    props: dict[str, int]  # by name; signed ranges already signed
    prop_ids: dict[str, int]
    enum_names: dict[str, str | None] = field(default_factory=dict)  # enum props: value's name


@dataclass(frozen=True, slots=True)
class Topology:
    resources: CardResources
    connectors: tuple[Connector, ...]
    encoders: dict[int, Encoder]
    crtcs: dict[int, Crtc]
    planes: tuple[PlaneInfo, ...]

    def connector_names(self) -> list[str]:
        return [c.name for c in self.connectors]

    def crtc_index(self, crtc_id: int) -> int:
        return self.resources.crtc_ids.index(crtc_id)


def _signed(value: int, prop: Property) -> int:
    if prop.flags & DRM_MODE_PROP_EXTENDED_TYPE == DRM_MODE_PROP_SIGNED_RANGE:
        return value - (1 << 64) if value >= 1 << 63 else value
    return value


def read_plane(card: CardSource, plane_id: int, names: dict[int, Property]) -> PlaneInfo:
    """One plane with its properties by name; ``names`` caches GETPROPERTY."""
    plane = card.plane(plane_id)
    values = card.object_properties(plane_id, DRM_MODE_OBJECT_PLANE)
    props, prop_ids, enum_names = {}, {}, {}
    for prop_id, value in values.items():
        if prop_id not in names:
            names[prop_id] = card.property(prop_id)
        prop = names[prop_id]
        props[prop.name] = _signed(value, prop)
        prop_ids[prop.name] = prop_id
        if prop.enums:
            enum_names[prop.name] = prop.enum_name(value)
    return PlaneInfo(plane, props.get("type"), props, prop_ids, enum_names)


def read_topology(card: CardSource) -> Topology:
    """Everything the output decisions need, read once."""
    resources = card.resources()
    connectors = tuple(card.connector(cid) for cid in resources.connector_ids)
    encoders = {eid: card.encoder(eid) for eid in resources.encoder_ids}
    crtcs = {cid: card.crtc(cid) for cid in resources.crtc_ids}
    names: dict[int, Property] = {}
    planes = tuple(read_plane(card, pid, names) for pid in card.plane_resources())
    return Topology(resources, connectors, encoders, crtcs, planes)


# --- decisions (pure) -----------------------------------------------------

@dataclass(frozen=True, slots=True)
class CaptureOutput:
    connector: Connector
    crtc: Crtc
    primary: PlaneInfo
    cursor: PlaneInfo | None


def _pick_connector(topology: Topology, name: str | None) -> Connector | None:
    """The connector called ``name``; None when no name was asked for."""
    if name is None:
        return None
    for connector in topology.connectors:
        if connector.name == name:
            return connector
    raise DrmError(f"no connector named {name}",
                   details=[f"connectors: {', '.join(topology.connector_names())}"])


def _crtc_of(topology: Topology, connector: Connector) -> Crtc | None:
    encoder = topology.encoders.get(connector.encoder_id)
    if encoder is None or encoder.crtc_id == 0:
        return None
    return topology.crtcs.get(encoder.crtc_id)


def describe_connectors(topology: Topology) -> list[str]:
    """One line per connector, for error details and the probe."""
    lines = []
    for c in topology.connectors:
        crtc = _crtc_of(topology, c)
        state = "connected" if c.connected else "disconnected"
        if crtc is not None and crtc.active:
            state += f", showing {crtc.mode} on CRTC {crtc.id}"
        lines.append(f"{c.name}: {state}")
    return lines


def _planes_on(topology: Topology, crtc: Crtc, plane_type: int) -> list[PlaneInfo]:
    index = topology.crtc_index(crtc.id)
    return [
        p for p in topology.planes
        if p.type == plane_type
        and (p.plane.crtc_id == crtc.id or (p.plane.crtc_id == 0
                                            and p.plane.possible_crtcs >> index & 1))
    ]


def choose_capture_output(topology: Topology, name: str | None = None) -> CaptureOutput:
    """The connector to capture (``name``, or the first connected and lit one),
    the CRTC scanning it out, its primary plane and its cursor plane."""
    wanted = _pick_connector(topology, name)
    candidates = [wanted] if wanted is not None else list(topology.connectors)
    for connector in candidates:
        if not connector.connected:
            if wanted is not None:
                raise DrmError(f"{connector.name} is not connected",
                               details=describe_connectors(topology))
            continue
        crtc = _crtc_of(topology, connector)
        if crtc is None or not crtc.active:
            if wanted is not None:
                raise DrmError(f"{connector.name} is connected but not lit (no CRTC scans it out)",
                               details=describe_connectors(topology))
            continue
        primaries = [p for p in _planes_on(topology, crtc, PLANE_TYPE_PRIMARY)
                     if p.plane.crtc_id == crtc.id]
        if not primaries:
            raise DrmError(f"no primary plane scans out CRTC {crtc.id} ({connector.name})",
                           details=describe_connectors(topology))
        # A hidden cursor's plane is detached (crtc_id 0); prefer the one on our CRTC.
        cursors = sorted(_planes_on(topology, crtc, PLANE_TYPE_CURSOR),
                         key=lambda p: p.plane.crtc_id != crtc.id)
        return CaptureOutput(connector, crtc, primaries[0], cursors[0] if cursors else None)
    raise DrmError("no connected display is lit: nothing to capture",
                   details=describe_connectors(topology))


@dataclass(frozen=True, slots=True)
class PresentOutput:
    connector: Connector
    crtc_id: int
    mode: Mode


def choose_mode(modes: tuple[Mode, ...], width: int, height: int,
                current: Mode | None) -> Mode:
    """The smallest progressive mode that holds ``width`` x ``height`` (highest
    refresh among equals); else the current mode; else the preferred one."""
    progressive = [m for m in modes if not m.interlaced] or list(modes)
    fits = [m for m in progressive if m.width >= width and m.height >= height]
    if fits:
        return min(fits, key=lambda m: (m.width * m.height, -m.refresh_mhz))
    if current is not None:
        return current
    preferred = [m for m in progressive if m.preferred]
    if preferred:
        return preferred[0]
    if progressive:
        return max(progressive, key=lambda m: (m.width * m.height, m.refresh_mhz))
    raise DrmError("the connector reports no modes")


def choose_present_output(topology: Topology, name: str | None, width: int,
                          height: int) -> PresentOutput:
    """Connector (``name`` or the first connected), a CRTC for it (the one
    driving it now, else a free one its encoders can use) and a mode."""
    wanted = _pick_connector(topology, name)
    connected = [c for c in ([wanted] if wanted else topology.connectors) if c.connected]
    if not connected:
        what = f"{wanted.name} is not connected" if wanted else "no display is connected"
        raise DrmError(what, details=describe_connectors(topology))
    connector = connected[0]
    crtc = _crtc_of(topology, connector)
    if crtc is None:
        crtc = _free_crtc(topology, connector)
    if not connector.modes:
        raise DrmError(f"{connector.name} reports no modes",
                       details=describe_connectors(topology))
    return PresentOutput(connector, crtc.id,
                         choose_mode(connector.modes, width, height, crtc.mode))


def _free_crtc(topology: Topology, connector: Connector) -> Crtc:
    busy = {e.crtc_id for e in topology.encoders.values() if e.crtc_id}
    for encoder_id in connector.encoder_ids:
        encoder = topology.encoders.get(encoder_id)
        if encoder is None:
            continue
        for index, crtc_id in enumerate(topology.resources.crtc_ids):
            if encoder.possible_crtcs >> index & 1 and crtc_id not in busy:
                return topology.crtcs[crtc_id]
    raise DrmError(f"no free CRTC can drive {connector.name}",
                   details=describe_connectors(topology))


__all__ = [
    "ACCESS_HINT", "NO_DRI_HINT", "NO_DRI_MESSAGE", "CaptureOutput", "DrmError", "PlaneInfo",
    "PresentOutput", "Topology", "choose_capture_output", "choose_mode",
    "choose_present_output", "describe_connectors", "find_cards", "open_card", "open_output",
    "read_plane",
    "read_topology",
]
