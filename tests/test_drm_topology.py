"""Reading a card's topology and choosing outputs, from recorded replies.

ReplayCard (tests/data/drm/replay.py) answers the queries read_topology makes
with the recorded images of tests/data/drm/card-hdmi/, through the real
parsers: the same files DrmDevice(on_reply=...) writes when recording a card.
"""

from __future__ import annotations

import dataclasses
import runpy
from pathlib import Path

import pytest

from rootstream._native import drm as kms
from rootstream._native import drm_parse as p
from rootstream._native.drm_abi import PLANE_TYPE_CURSOR, PLANE_TYPE_PRIMARY

CARD = Path(__file__).parent / "data" / "drm" / "card-hdmi"


# tests/ is not a package: the shared replay card is loaded by path.
ReplayCard = runpy.run_path(str(CARD.parent / "replay.py"))["ReplayCard"]


@pytest.fixture
def topology() -> kms.Topology:
    return kms.read_topology(ReplayCard())


def test_read_topology(topology):
    assert topology.connector_names() == ["HDMI-A-1", "DP-1"]
    assert sorted(topology.crtcs) == [51, 72]
    types = {info.plane.id: info.type for info in topology.planes}
    assert types == {31: PLANE_TYPE_PRIMARY, 40: PLANE_TYPE_CURSOR,
                     49: PLANE_TYPE_PRIMARY, 58: PLANE_TYPE_CURSOR}
    cursor = next(info for info in topology.planes if info.plane.id == 40)
    # Signed-range properties come back signed; enums also by name.
    assert (cursor.props["CRTC_X"], cursor.props["CRTC_Y"]) == (800, -5)
    assert cursor.enum_names["pixel blend mode"] == "Pre-multiplied"
    assert cursor.enum_names["type"] == "Cursor"
    assert cursor.prop_ids["CRTC_X"] == 9


def test_properties_are_looked_up_once():
    card = ReplayCard()
    kms.read_topology(card)
    lookups = [name for name in card.asked if name.startswith("property-")]
    assert len(lookups) == len(set(lookups)) == 9


def test_default_capture_output_is_the_lit_hdmi(topology):
    out = kms.choose_capture_output(topology)
    assert out.connector.name == "HDMI-A-1"
    assert out.crtc.id == 51 and str(out.crtc.mode) == "1920x1080@60.00"
    assert out.primary.plane.id == 31
    assert out.cursor.plane.id == 40


def test_named_capture_output(topology):
    assert kms.choose_capture_output(topology, "HDMI-A-1").crtc.id == 51


def test_unknown_connector_lists_the_known_ones(topology):
    with pytest.raises(p.DrmError, match="no connector named HDMI-A-2") as info:
        kms.choose_capture_output(topology, "HDMI-A-2")
    assert info.value.details == ["connectors: HDMI-A-1, DP-1"]


def test_disconnected_connector(topology):
    with pytest.raises(p.DrmError, match="DP-1 is not connected") as info:
        kms.choose_capture_output(topology, "DP-1")
    assert info.value.details == [
        "HDMI-A-1: connected, showing 1920x1080@60.00 on CRTC 51", "DP-1: disconnected",
    ]


def _with_crtc_off(topology: kms.Topology) -> kms.Topology:
    crtcs = dict(topology.crtcs)
    crtcs[51] = dataclasses.replace(crtcs[51], fb_id=0, mode=None)
    return dataclasses.replace(topology, crtcs=crtcs)


def test_connected_but_dark(topology):
    dark = _with_crtc_off(topology)
    with pytest.raises(p.DrmError, match="HDMI-A-1 is connected but not lit"):
        kms.choose_capture_output(dark, "HDMI-A-1")
    with pytest.raises(p.DrmError, match="no connected display is lit"):
        kms.choose_capture_output(dark)


def test_no_primary_plane(topology):
    planes = tuple(info for info in topology.planes if info.type != PLANE_TYPE_PRIMARY)
    with pytest.raises(p.DrmError, match="no primary plane scans out CRTC 51"):
        kms.choose_capture_output(dataclasses.replace(topology, planes=planes))


def test_hidden_cursor_plane_is_still_found(topology):
    planes = tuple(
        dataclasses.replace(info, plane=dataclasses.replace(info.plane, crtc_id=0, fb_id=0))
        if info.plane.id == 40 else info
        for info in topology.planes
    )
    out = kms.choose_capture_output(dataclasses.replace(topology, planes=planes))
    # Plane 58 can only reach CRTC 72 (possible_crtcs 0x2): 40 it is.
    assert out.cursor.plane.id == 40


def test_present_output_keeps_the_crtc_and_picks_an_exact_mode(topology):
    out = kms.choose_present_output(topology, None, 1280, 720)
    assert out.connector.name == "HDMI-A-1" and out.crtc_id == 51
    assert str(out.mode) == "1280x720@60.00"


def test_present_output_on_a_dark_connector_takes_a_free_crtc(topology):
    encoders = dict(topology.encoders)
    encoders[94] = dataclasses.replace(encoders[94], crtc_id=0)
    connectors = tuple(dataclasses.replace(c, encoder_id=0) for c in topology.connectors)
    dark = dataclasses.replace(_with_crtc_off(topology), encoders=encoders,
                               connectors=connectors)
    out = kms.choose_present_output(dark, "HDMI-A-1", 1920, 1080)
    assert out.crtc_id == 51 and str(out.mode) == "1920x1080@60.00"


def test_present_output_needs_a_connected_display(topology):
    with pytest.raises(p.DrmError, match="DP-1 is not connected"):
        kms.choose_present_output(topology, "DP-1", 1280, 720)


def test_choose_mode(topology):
    modes = topology.connectors[0].modes
    current = topology.crtcs[51].mode
    assert str(kms.choose_mode(modes, 1000, 700, current)) == "1024x768@60.00"
    assert str(kms.choose_mode(modes, 1920, 1080, None)) == "1920x1080@60.00"
    # Nothing holds 4K: keep what the display shows, else its preferred mode.
    small = modes[1:]
    assert kms.choose_mode(small, 3840, 2160, current) is current
    assert str(kms.choose_mode(modes, 3840, 2160, None)) == "1920x1080@60.00"
    assert str(kms.choose_mode(small, 3840, 2160, None)) == "1280x720@60.00"
    with pytest.raises(p.DrmError, match="no modes"):
        kms.choose_mode((), 640, 480, None)


def test_find_cards(tmp_path):
    with pytest.raises(p.DrmError, match="no DRM device: /dev/dri does not exist"):
        kms.find_cards(tmp_path / "dri")
    (tmp_path / "renderD128").touch()
    with pytest.raises(p.DrmError, match="no DRM card"):
        kms.find_cards(tmp_path)
    for name in ("card10", "card2", "card0"):
        (tmp_path / name).touch()
    assert [c.name for c in kms.find_cards(tmp_path)] == ["card0", "card2", "card10"]


def test_open_card_reports_every_card_tried(tmp_path):
    # Regular files answer every ioctl with ENOTTY, as a non-DRM device would.
    for name in ("card0", "card1"):
        (tmp_path / name).touch()
    with pytest.raises(p.DrmError, match="card0 is not a DRM device") as info:
        kms.open_card(dri_dir=tmp_path)
    assert len(info.value.details) == 2 and "card1 is not a DRM device" in info.value.details[1]



def test_open_output_chooses_on_the_card_it_was_given():
    card, output = kms.open_output(ReplayCard(), kms.choose_capture_output)
    assert output.connector.name == "HDMI-A-1" and card.fd >= 0
    card.close()


def test_open_output_closes_a_card_it_cannot_use():
    card = ReplayCard()
    with pytest.raises(p.DrmError, match="DP-1 is not connected"):
        kms.open_output(card, lambda t: kms.choose_capture_output(t, "DP-1"))
    assert card.fd == -1


def test_open_output_tries_every_card(tmp_path):
    for name in ("card0", "card1"):
        (tmp_path / name).touch()
    with pytest.raises(p.DrmError, match="card0 is not a DRM device") as info:
        kms.open_output(None, kms.choose_capture_output, dri_dir=tmp_path)
    assert [line.split(":")[0] for line in info.value.details] == [
        str(tmp_path / "card0"), str(tmp_path / "card1")]
