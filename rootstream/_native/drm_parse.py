"""Pure parsers for the kernel's DRM/KMS replies.

Each ioctl that returns arrays writes them to user pointers named in its
argument struct.  The device layer hands every reply over as one *image*: the
argument struct exactly as the kernel left it, followed by the arrays it
filled, in the order of their pointer fields (each array as long as the
struct's count says).  These functions turn images into plain dataclasses and
never touch a file descriptor, so tests feed them recorded images from
tests/data/drm/.

An image shorter than its counts promise is "truncated"; one longer, or with
counts beyond any real card, is "malformed".  Either raises DrmReplyError with
a fixed message; nothing here indexes past the data it was given.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from rootstream._native.drm_abi import (
    CONNECTOR_STATUS_CONNECTED,
    CONNECTOR_TYPE_NAMES,
    DRM_EVENT_FLIP_COMPLETE,
    DRM_EVENT_VBLANK,
    DRM_FORMAT_MOD_INVALID,
    DRM_MODE_FB_MODIFIERS,
    DRM_MODE_FLAG_INTERLACE,
    DRM_MODE_PROP_BITMASK,
    DRM_MODE_PROP_ENUM,
    DRM_MODE_TYPE_PREFERRED,
    ffi,
)
from rootstream.errors import RootStreamError

# No real card has more objects than this; a count beyond it is garbage and
# must not turn into a multi-gigabyte allocation.
MAX_OBJECTS = 4096
MAX_BLOB_BYTES = 1 << 20
MAX_STRING_BYTES = 4096


class DrmError(RootStreamError):
    """A DRM device could not be opened or an ioctl on it failed."""


class DrmReplyError(DrmError):
    """A kernel reply image is truncated or malformed."""


SIZEOF = {
    name: ffi.sizeof(f"struct {name}")
    for name in (
        "drm_version", "drm_mode_card_res", "drm_mode_get_connector", "drm_mode_modeinfo",
        "drm_mode_get_encoder", "drm_mode_crtc", "drm_mode_get_plane_res",
        "drm_mode_get_plane", "drm_mode_obj_get_properties", "drm_mode_get_property",
        "drm_mode_property_enum", "drm_mode_fb_cmd2", "drm_event", "drm_event_vblank",
        "drm_format_modifier_blob", "drm_format_modifier",
    )
}


def _struct(name: str, data: bytes, what: str):
    """Copy the leading struct out of ``data`` into a fresh cffi object."""
    size = SIZEOF[name]
    if len(data) < size:
        raise DrmReplyError(f"DRM {what} reply is truncated")
    obj = ffi.new(f"struct {name} *")
    ffi.memmove(obj, data[:size], size)
    return obj


class _Reader:
    """Walks the arrays after the struct, checking each length before reading."""

    def __init__(self, data: bytes, offset: int, what: str):
        self.data, self.offset, self.what = data, offset, what

    def take(self, size: int) -> bytes:
        end = self.offset + size
        if end > len(self.data):
            raise DrmReplyError(f"DRM {self.what} reply is truncated")
        chunk = self.data[self.offset:end]
        self.offset = end
        return chunk

    def u32s(self, count: int) -> tuple[int, ...]:
        return struct.unpack(f"={_count(count, self.what)}I", self.take(4 * count))

    def u64s(self, count: int) -> tuple[int, ...]:
        return struct.unpack(f"={_count(count, self.what)}Q", self.take(8 * count))

    def done(self) -> None:
        if self.offset != len(self.data):
            raise DrmReplyError(f"DRM {self.what} reply is malformed: trailing bytes")


def _count(count: int, what: str) -> int:
    if count > MAX_OBJECTS:
        raise DrmReplyError(f"DRM {what} reply is malformed: implausible count")
    return count


def _cstring(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")


# --- driver version -------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DriverVersion:
    major: int
    minor: int
    patchlevel: int
    name: str
    date: str
    description: str


def parse_version(data: bytes) -> DriverVersion:
    """Image: struct drm_version, then name, date and desc bytes."""
    v = _struct("drm_version", data, "version")
    lengths = (v.name_len, v.date_len, v.desc_len)
    if any(length > MAX_STRING_BYTES for length in lengths):
        raise DrmReplyError("DRM version reply is malformed: implausible count")
    reader = _Reader(data, SIZEOF["drm_version"], "version")
    name, date, desc = (_cstring(reader.take(length)) for length in lengths)
    reader.done()
    return DriverVersion(v.version_major, v.version_minor, v.version_patchlevel, name, date, desc)


# --- card resources -------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CardResources:
    fb_ids: tuple[int, ...]
    crtc_ids: tuple[int, ...]
    connector_ids: tuple[int, ...]
    encoder_ids: tuple[int, ...]
    min_size: tuple[int, int]
    max_size: tuple[int, int]


def parse_card_res(data: bytes) -> CardResources:
    """Image: struct drm_mode_card_res, then fb, crtc, connector, encoder ids."""
    r = _struct("drm_mode_card_res", data, "resources")
    reader = _Reader(data, SIZEOF["drm_mode_card_res"], "resources")
    fbs = reader.u32s(r.count_fbs)
    crtcs = reader.u32s(r.count_crtcs)
    connectors = reader.u32s(r.count_connectors)
    encoders = reader.u32s(r.count_encoders)
    reader.done()
    return CardResources(
        fbs, crtcs, connectors, encoders,
        (r.min_width, r.min_height), (r.max_width, r.max_height),
    )


# --- modes ----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Mode:
    """One display timing; ``raw`` is the kernel's 68-byte modeinfo, reused by SETCRTC."""

    width: int
    height: int
    refresh_mhz: int  # millihertz, from the timings, so 59.94 and 60 differ
    clock_khz: int
    flags: int
    type: int
    name: str
    raw: bytes = field(repr=False)

    @property
    def preferred(self) -> bool:
        return bool(self.type & DRM_MODE_TYPE_PREFERRED)

    @property
    def interlaced(self) -> bool:
        return bool(self.flags & DRM_MODE_FLAG_INTERLACE)

    def __str__(self) -> str:
        return f"{self.width}x{self.height}@{self.refresh_mhz / 1000:.2f}"


def parse_modeinfo(data: bytes) -> Mode:
    """Image: exactly one struct drm_mode_modeinfo."""
    size = SIZEOF["drm_mode_modeinfo"]
    if len(data) != size:
        raise DrmReplyError("DRM mode reply is truncated" if len(data) < size
                            else "DRM mode reply is malformed: trailing bytes")
    m = _struct("drm_mode_modeinfo", data, "mode")
    if m.htotal and m.vtotal:
        refresh = m.clock * 1_000_000 // (m.htotal * m.vtotal)
        if m.flags & DRM_MODE_FLAG_INTERLACE:
            refresh *= 2
        if m.vscan > 1:
            refresh //= m.vscan
    else:
        refresh = m.vrefresh * 1000
    return Mode(m.hdisplay, m.vdisplay, refresh, m.clock, m.flags, m.type,
                _cstring(ffi.buffer(m.name)[:]), bytes(data))


# --- connectors and encoders ----------------------------------------------

def connector_name(connector_type: int, connector_type_id: int) -> str:
    """The kernel's name for a connector: "HDMI-A-1", "DP-2", "eDP-1"."""
    if connector_type < len(CONNECTOR_TYPE_NAMES):
        kind = CONNECTOR_TYPE_NAMES[connector_type]
    else:
        kind = f"type{connector_type}"
    return f"{kind}-{connector_type_id}"


@dataclass(frozen=True, slots=True)
class Connector:
    id: int
    name: str
    connection: int
    encoder_id: int  # the encoder driving it now, 0 if none
    encoder_ids: tuple[int, ...]
    modes: tuple[Mode, ...]
    properties: dict[int, int]
    size_mm: tuple[int, int]

    @property
    def connected(self) -> bool:
        return self.connection == CONNECTOR_STATUS_CONNECTED


def parse_connector(data: bytes) -> Connector:
    """Image: struct drm_mode_get_connector, then encoders, modes, props, prop values."""
    c = _struct("drm_mode_get_connector", data, "connector")
    reader = _Reader(data, SIZEOF["drm_mode_get_connector"], "connector")
    encoders = reader.u32s(c.count_encoders)
    mode_size = SIZEOF["drm_mode_modeinfo"]
    modes = tuple(
        parse_modeinfo(reader.take(mode_size)) for _ in range(_count(c.count_modes, "connector"))
    )
    props = reader.u32s(c.count_props)
    values = reader.u64s(c.count_props)
    reader.done()
    return Connector(
        c.connector_id, connector_name(c.connector_type, c.connector_type_id), c.connection,
        c.encoder_id, encoders, modes, dict(zip(props, values, strict=True)),
        (c.mm_width, c.mm_height),
    )


@dataclass(frozen=True, slots=True)
class Encoder:
    id: int
    type: int
    crtc_id: int
    possible_crtcs: int  # bit i: the i-th CRTC of GETRESOURCES


def parse_encoder(data: bytes) -> Encoder:
    e = _struct("drm_mode_get_encoder", data, "encoder")
    _Reader(data, SIZEOF["drm_mode_get_encoder"], "encoder").done()
    return Encoder(e.encoder_id, e.encoder_type, e.crtc_id, e.possible_crtcs)


# --- CRTCs and planes -----------------------------------------------------

@dataclass(frozen=True, slots=True)
class Crtc:
    id: int
    fb_id: int
    x: int
    y: int
    mode: Mode | None  # None when the CRTC is off

    @property
    def active(self) -> bool:
        return self.mode is not None and self.fb_id != 0


def parse_crtc(data: bytes) -> Crtc:
    c = _struct("drm_mode_crtc", data, "CRTC")
    _Reader(data, SIZEOF["drm_mode_crtc"], "CRTC").done()
    mode = None
    if c.mode_valid:
        mode = parse_modeinfo(bytes(ffi.buffer(ffi.addressof(c, "mode"))))
    return Crtc(c.crtc_id, c.fb_id, c.x, c.y, mode)


def parse_plane_res(data: bytes) -> tuple[int, ...]:
    """Image: struct drm_mode_get_plane_res, then the plane ids."""
    r = _struct("drm_mode_get_plane_res", data, "plane resources")
    reader = _Reader(data, SIZEOF["drm_mode_get_plane_res"], "plane resources")
    ids = reader.u32s(r.count_planes)
    reader.done()
    return ids


@dataclass(frozen=True, slots=True)
class Plane:
    id: int
    crtc_id: int
    fb_id: int
    possible_crtcs: int
    formats: tuple[int, ...]


def parse_plane(data: bytes) -> Plane:
    """Image: struct drm_mode_get_plane, then its format fourccs."""
    p = _struct("drm_mode_get_plane", data, "plane")
    reader = _Reader(data, SIZEOF["drm_mode_get_plane"], "plane")
    formats = reader.u32s(p.count_format_types)
    reader.done()
    return Plane(p.plane_id, p.crtc_id, p.fb_id, p.possible_crtcs, formats)


# --- properties -----------------------------------------------------------

def parse_obj_properties(data: bytes) -> dict[int, int]:
    """Image: struct drm_mode_obj_get_properties, then prop ids, then u64 values."""
    o = _struct("drm_mode_obj_get_properties", data, "object properties")
    reader = _Reader(data, SIZEOF["drm_mode_obj_get_properties"], "object properties")
    ids = reader.u32s(o.count_props)
    values = reader.u64s(o.count_props)
    reader.done()
    return dict(zip(ids, values, strict=True))


@dataclass(frozen=True, slots=True)
class Property:
    id: int
    name: str
    flags: int
    values: tuple[int, ...]  # range bounds, or the enum values
    enums: dict[str, int]  # enum/bitmask entries by name

    def enum_name(self, value: int) -> str | None:
        for name, enum_value in self.enums.items():
            if enum_value == value:
                return name
        return None


def property_has_enums(flags: int) -> bool:
    """Only enum and bitmask properties have name entries the kernel copies out."""
    return bool(flags & (DRM_MODE_PROP_ENUM | DRM_MODE_PROP_BITMASK))


def parse_property(data: bytes) -> Property:
    """Image: struct drm_mode_get_property, then u64 values, then enum entries."""
    p = _struct("drm_mode_get_property", data, "property")
    reader = _Reader(data, SIZEOF["drm_mode_get_property"], "property")
    values = reader.u64s(p.count_values)
    enums: dict[str, int] = {}
    count = p.count_enum_blobs if property_has_enums(p.flags) else 0
    entry_size = SIZEOF["drm_mode_property_enum"]
    for _ in range(_count(count, "property")):
        entry = _struct("drm_mode_property_enum", reader.take(entry_size), "property")
        enums[_cstring(ffi.buffer(entry.name)[:])] = entry.value
    reader.done()
    return Property(p.prop_id, _cstring(ffi.buffer(p.name)[:]), p.flags, values, enums)


def parse_format_modifier_blob(data: bytes) -> dict[int, tuple[int, ...]]:
    """An IN_FORMATS blob: fourcc -> the modifiers the plane scans out with it."""
    if len(data) > MAX_BLOB_BYTES:
        raise DrmReplyError("DRM IN_FORMATS blob is malformed: implausible size")
    head = _struct("drm_format_modifier_blob", data, "IN_FORMATS blob")
    formats = _Reader(data, head.formats_offset, "IN_FORMATS blob").u32s(head.count_formats)
    reader = _Reader(data, head.modifiers_offset, "IN_FORMATS blob")
    result: dict[int, list[int]] = {fmt: [] for fmt in formats}
    entry_size = SIZEOF["drm_format_modifier"]
    for _ in range(_count(head.count_modifiers, "IN_FORMATS blob")):
        entry = _struct("drm_format_modifier", reader.take(entry_size), "IN_FORMATS blob")
        # Each entry covers 64 formats starting at ``offset`` in the list.
        for bit in range(64):
            index = entry.offset + bit
            if entry.formats >> bit & 1 and index < len(formats):
                result[formats[index]].append(entry.modifier)
    return {fmt: tuple(mods) for fmt, mods in result.items()}


# --- framebuffers ---------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Framebuffer:
    id: int
    width: int
    height: int
    pixel_format: int
    handles: tuple[int, int, int, int]  # all 0 when the caller lacks CAP_SYS_ADMIN
    pitches: tuple[int, int, int, int]
    offsets: tuple[int, int, int, int]
    modifier: int  # DRM_FORMAT_MOD_INVALID when GETFB2 did not say (modifier unknown)


def parse_fb2(data: bytes) -> Framebuffer:
    f = _struct("drm_mode_fb_cmd2", data, "framebuffer")
    _Reader(data, SIZEOF["drm_mode_fb_cmd2"], "framebuffer").done()
    # Without DRM_MODE_FB_MODIFIERS the driver does not track modifiers (the
    # kernel then zeroes modifier[]), and such a driver may still tile the
    # buffer implicitly: the layout is unknown, never assumed linear.
    modifier = f.modifier[0] if f.flags & DRM_MODE_FB_MODIFIERS else DRM_FORMAT_MOD_INVALID
    return Framebuffer(
        f.fb_id, f.width, f.height, f.pixel_format,
        tuple(f.handles), tuple(f.pitches), tuple(f.offsets), modifier,
    )


# --- events read from the card fd -----------------------------------------

@dataclass(frozen=True, slots=True)
class VblankEvent:
    type: int  # DRM_EVENT_FLIP_COMPLETE or DRM_EVENT_VBLANK
    user_data: int
    tv_sec: int
    tv_usec: int
    sequence: int
    crtc_id: int

    @property
    def timestamp_ns(self) -> int:
        """CLOCK_MONOTONIC of the vblank, the clock time.monotonic_ns() reads."""
        return self.tv_sec * 1_000_000_000 + self.tv_usec * 1000


def parse_events(data: bytes) -> list[VblankEvent]:
    """What one read() of the card fd returned: a run of drm_event records.

    Flip-complete and vblank events are returned; other kinds (CRTC sequence,
    driver-private) are skipped by their length, as libdrm does.
    """
    events: list[VblankEvent] = []
    offset, head_size = 0, SIZEOF["drm_event"]
    while offset < len(data):
        head = _struct("drm_event", data[offset:offset + head_size], "event")
        if head.length < head_size or head.length % 4:
            raise DrmReplyError("DRM event reply is malformed: bad event length")
        if offset + head.length > len(data):
            raise DrmReplyError("DRM event reply is truncated")
        if head.type in (DRM_EVENT_FLIP_COMPLETE, DRM_EVENT_VBLANK):
            if head.length < SIZEOF["drm_event_vblank"]:
                raise DrmReplyError("DRM event reply is malformed: short vblank event")
            v = _struct("drm_event_vblank", data[offset:offset + head.length], "event")
            events.append(VblankEvent(head.type, v.user_data, v.tv_sec, v.tv_usec,
                                      v.sequence, v.crtc_id))
        offset += head.length
    return events
