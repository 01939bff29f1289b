"""Parsers of DRM/KMS replies, fed the recorded images in tests/data/drm/card-hdmi/.

The images were written by tests/data/drm/make_images.c with the kernel's own
structs (see test_drm_images.py), so these tests check rootstream's cffi
reading of the kernel ABI as well as the parsing logic.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rootstream._native import drm_parse as p
from rootstream._native.drm_abi import (
    DRM_EVENT_FLIP_COMPLETE,
    DRM_EVENT_VBLANK,
    DRM_FORMAT_ARGB8888,
    DRM_FORMAT_MOD_INVALID,
    DRM_FORMAT_MOD_LINEAR,
    DRM_FORMAT_XBGR8888,
    DRM_FORMAT_XRGB8888,
    DRM_MODE_PROP_ENUM,
    DRM_MODE_PROP_IMMUTABLE,
    ffi,
)

CARD = Path(__file__).parent / "data" / "drm" / "card-hdmi"
I915_X_TILED = (0x01 << 56) | 1


def image(name: str) -> bytes:
    return (CARD / f"{name}.bin").read_bytes()


PARSERS = {
    "version": p.parse_version,
    "resources": p.parse_card_res,
    "connector-95": p.parse_connector,
    "connector-103": p.parse_connector,
    "encoder-94": p.parse_encoder,
    "crtc-51": p.parse_crtc,
    "crtc-72": p.parse_crtc,
    "plane-resources": p.parse_plane_res,
    "plane-31": p.parse_plane,
    "plane-40": p.parse_plane,
    "props-40": p.parse_obj_properties,
    "property-8": p.parse_property,
    "property-9": p.parse_property,
    "property-30": p.parse_property,
    "blob-121": p.parse_format_modifier_blob,
    "fb-84": p.parse_fb2,
    "fb-85-tiled": p.parse_fb2,
}


def test_version():
    v = p.parse_version(image("version"))
    assert (v.major, v.minor, v.patchlevel) == (1, 6, 0)
    assert (v.name, v.date, v.description) == ("i915", "20201103", "Intel Graphics")


def test_resources_list_crtcs_connectors_encoders():
    r = p.parse_card_res(image("resources"))
    assert r.fb_ids == ()
    assert r.crtc_ids == (51, 72)
    assert r.connector_ids == (95, 103)
    assert r.encoder_ids == (94, 102)
    assert r.max_size == (16384, 16384)


def test_connected_hdmi_connector_with_modes():
    c = p.parse_connector(image("connector-95"))
    assert c.name == "HDMI-A-1"
    assert c.connected
    assert c.encoder_id == 94 and c.encoder_ids == (94,)
    assert [str(m) for m in c.modes] == ["1920x1080@60.00", "1280x720@60.00", "1024x768@60.00"]
    assert c.modes[0].preferred and not c.modes[1].preferred
    assert c.modes[0].refresh_mhz == 60000 and c.modes[0].clock_khz == 148500
    assert c.modes[0].name == "1920x1080"
    assert c.properties == {1: 120, 2: 0, 20: 51}
    assert c.size_mm == (600, 340)


def test_disconnected_dp_connector():
    c = p.parse_connector(image("connector-103"))
    assert c.name == "DP-1"
    assert not c.connected
    assert c.modes == () and c.encoder_id == 0


def test_mode_raw_bytes_round_trip_into_the_crtc():
    # SETCRTC reuses the kernel's modeinfo bytes verbatim.
    mode = p.parse_connector(image("connector-95")).modes[0]
    crtc_mode = p.parse_crtc(image("crtc-51")).mode
    assert len(mode.raw) == ffi.sizeof("struct drm_mode_modeinfo")
    assert mode.raw == crtc_mode.raw


def test_crtcs_active_and_off():
    on, off = p.parse_crtc(image("crtc-51")), p.parse_crtc(image("crtc-72"))
    assert on.active and on.fb_id == 84 and (on.mode.width, on.mode.height) == (1920, 1080)
    assert not off.active and off.mode is None


def test_planes_and_their_properties():
    assert p.parse_plane_res(image("plane-resources")) == (31, 40, 49, 58)
    primary = p.parse_plane(image("plane-31"))
    assert (primary.crtc_id, primary.fb_id, primary.possible_crtcs) == (51, 84, 1)
    assert primary.formats[:3] == (DRM_FORMAT_XRGB8888, DRM_FORMAT_ARGB8888, DRM_FORMAT_XBGR8888)
    props = p.parse_obj_properties(image("props-40"))
    assert props[8] == 2  # type: Cursor
    assert props[10] == (1 << 64) - 5  # CRTC_Y -5, as the kernel's u64 image


def test_enum_and_range_properties():
    kind = p.parse_property(image("property-8"))
    assert kind.name == "type"
    assert kind.flags == DRM_MODE_PROP_ENUM | DRM_MODE_PROP_IMMUTABLE
    assert kind.enums == {"Overlay": 0, "Primary": 1, "Cursor": 2}
    assert kind.enum_name(2) == "Cursor" and kind.enum_name(9) is None
    crtc_x = p.parse_property(image("property-9"))
    assert crtc_x.name == "CRTC_X" and crtc_x.enums == {}
    assert crtc_x.values == ((1 << 64) - (1 << 31), (1 << 31) - 1)
    blob = p.parse_property(image("property-30"))
    assert blob.name == "IN_FORMATS" and blob.values == ()


def test_in_formats_blob():
    table = p.parse_format_modifier_blob(image("blob-121"))
    assert table == {
        DRM_FORMAT_XRGB8888: (DRM_FORMAT_MOD_LINEAR, I915_X_TILED),
        DRM_FORMAT_ARGB8888: (DRM_FORMAT_MOD_LINEAR, I915_X_TILED),
        DRM_FORMAT_XBGR8888: (DRM_FORMAT_MOD_LINEAR,),
    }


def test_framebuffers():
    fb = p.parse_fb2(image("fb-84"))
    assert (fb.id, fb.width, fb.height, fb.pixel_format) == (84, 1920, 1080, DRM_FORMAT_XRGB8888)
    assert fb.handles == (1, 0, 0, 0) and fb.pitches[0] == 7680 and fb.offsets[0] == 0
    assert fb.modifier == DRM_FORMAT_MOD_LINEAR
    assert p.parse_fb2(image("fb-84-unprivileged")).handles == (0, 0, 0, 0)
    assert p.parse_fb2(image("fb-85-tiled")).modifier == I915_X_TILED
    cursor = p.parse_fb2(image("fb-90"))
    assert (cursor.width, cursor.height, cursor.pixel_format) == (64, 64, DRM_FORMAT_ARGB8888)


def test_fb_without_modifier_flag_has_an_unknown_modifier():
    # A driver without modifier support may tile implicitly: never assume linear.
    raw = bytearray(image("fb-84"))
    flags_at = ffi.offsetof("struct drm_mode_fb_cmd2", "flags")
    raw[flags_at:flags_at + 4] = b"\0\0\0\0"
    assert p.parse_fb2(bytes(raw)).modifier == DRM_FORMAT_MOD_INVALID


def test_events_skip_unknown_kinds():
    events = p.parse_events(image("events"))
    assert [e.type for e in events] == [DRM_EVENT_FLIP_COMPLETE, DRM_EVENT_VBLANK]
    flip = events[0]
    assert (flip.user_data, flip.sequence, flip.crtc_id) == (0x1234, 4242, 51)
    assert flip.timestamp_ns == 1234 * 10**9 + 567890 * 1000
    assert p.parse_events(b"") == []


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_prefix_is_truncated(name):
    data, parse = image(name), PARSERS[name]
    for cut in range(len(data)):
        with pytest.raises(p.DrmReplyError, match="is truncated"):
            parse(data[:cut])


@pytest.mark.parametrize("name", sorted(set(PARSERS) - {"blob-121"}))
def test_trailing_bytes_are_malformed(name):
    with pytest.raises(p.DrmReplyError, match="malformed: trailing bytes"):
        PARSERS[name](image(name) + b"\0\0\0\0")


def test_event_prefixes_end_on_boundaries_or_fail():
    data = image("events")
    boundaries = {0, 32, 32 + 32, 96}  # vblank 32, crtc-sequence 32, vblank 32
    for cut in range(len(data)):
        if cut in boundaries:
            p.parse_events(data[:cut])
        else:
            with pytest.raises(p.DrmReplyError, match="truncated"):
                p.parse_events(data[:cut])


@pytest.mark.parametrize("length, message", [
    (0, "bad event length"), (6, "bad event length"), (30, "bad event length"),
    (16, "short vblank event"),
])
def test_bad_event_lengths(length, message):
    data = struct.pack("=II", DRM_EVENT_FLIP_COMPLETE, length) + bytes(64)
    with pytest.raises(p.DrmReplyError, match=message):
        p.parse_events(data)


def test_implausible_counts_are_refused_before_allocating():
    raw = bytearray(image("resources"))
    at = ffi.offsetof("struct drm_mode_card_res", "count_connectors")
    raw[at:at + 4] = struct.pack("=I", 0xFFFFFFFF)
    with pytest.raises(p.DrmReplyError, match="implausible count"):
        p.parse_card_res(bytes(raw))
    raw = bytearray(image("version"))
    at = ffi.offsetof("struct drm_version", "name_len")
    raw[at:at + 8] = struct.pack("=Q", 1 << 40)
    with pytest.raises(p.DrmReplyError, match="implausible count"):
        p.parse_version(bytes(raw))


def test_mode_refresh_from_timings():
    mode = bytearray(p.parse_connector(image("connector-95")).modes[0].raw)
    # 1080p59.94: the same timings with clock 148352 kHz.
    struct.pack_into("=I", mode, 0, 148352)
    assert p.parse_modeinfo(bytes(mode)).refresh_mhz == 59940
    with pytest.raises(p.DrmReplyError, match="truncated"):
        p.parse_modeinfo(bytes(mode[:-1]))
    with pytest.raises(p.DrmReplyError, match="trailing"):
        p.parse_modeinfo(bytes(mode) + b"\0")


@pytest.mark.parametrize("kind, type_id, name", [
    (11, 1, "HDMI-A-1"), (10, 2, "DP-2"), (14, 1, "eDP-1"), (1, 1, "VGA-1"),
    (15, 3, "Virtual-3"), (20, 1, "USB-1"), (99, 1, "type99-1"),
])
def test_connector_names(kind, type_id, name):
    assert p.connector_name(kind, type_id) == name


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(PARSERS) + ["events"]), data=st.binary(max_size=600))
def test_garbage_raises_only_reply_errors(name, data):
    parse = p.parse_events if name == "events" else PARSERS[name]
    try:
        parse(data)
    except p.DrmReplyError:
        pass


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(sorted(PARSERS)), flips=st.lists(
    st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8))
def test_corrupted_images_raise_only_reply_errors(name, flips):
    data = bytearray(image(name))
    for at, value in flips:
        data[at % len(data)] = value
    try:
        PARSERS[name](bytes(data))
    except p.DrmReplyError:
        pass
