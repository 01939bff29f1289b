"""Encoders with real PyAV codecs: libx264/libx265 here, VA-API/NVENC on hardware."""

from __future__ import annotations

import ctypes.util
import glob

import av
import numpy as np
import pytest
from av.codec.context import CodecContext

from rootstream.decode import open_decoder
from rootstream.encode import ENCODERS, EncodedUnit, open_encoder, pattern_nv12, probe_encoders
from rootstream.errors import EncodeError

W, H = 1280, 720
PSNR_FLOOR_DB = 35.0  # luma, libx264 ultrafast at 10 Mbit/s on the test pattern


def planes_yuv(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U, V planes (cropped to the picture) of an NV12 or yuv420p frame."""
    w, h = frame.width, frame.height
    rows = [np.frombuffer(p, np.uint8).reshape(-1, p.line_size) for p in frame.planes]
    y = rows[0][:h, :w]
    if frame.format.name == "nv12":
        uv = rows[1][:h // 2, :w]
        return y, uv[:, 0::2], uv[:, 1::2]
    return y, rows[1][:h // 2, :w // 2], rows[2][:h // 2, :w // 2]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def nal_types(data: bytes) -> list[int]:
    """H.264 NAL unit types in an Annex B access unit."""
    types, i = [], data.find(b"\x00\x00\x01")
    while i != -1:
        types.append(data[i + 3] & 0x1F)
        i = data.find(b"\x00\x00\x01", i + 3)
    return types


def noisy_nv12(width: int, height: int, seed: int) -> av.VideoFrame:
    """The test pattern with strong luma noise: costly to encode, so rate control shows."""
    frame = pattern_nv12(width, height, seed)
    plane = frame.planes[0]
    luma = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:height, :width]
    noise = np.random.default_rng(seed).integers(0, 60, (height, width), dtype=np.uint8)
    luma[:] = np.clip(luma.astype(np.int16) + noise - 30, 16, 235).astype(np.uint8)
    return frame


@pytest.fixture
def x264():
    with open_encoder("x264", width=W, height=H, bitrate=10_000_000) as encoder:
        yield encoder


def test_probes_say_why_hardware_is_missing_and_x264_works():
    probes = {p.name: p for p in probe_encoders(width=W, height=H)}
    assert list(probes) == ["vaapi", "nvenc", "x264"]
    assert probes["x264"].ok and "libx264" in probes["x264"].reason
    if "h264_vaapi" not in av.codecs_available:
        assert not probes["vaapi"].ok
        assert "no h264_vaapi encoder" in probes["vaapi"].reason
    if not glob.glob("/dev/dri/renderD*"):
        assert not probes["vaapi"].ok and "/dev/dri/renderD*" in probes["vaapi"].reason
    if ctypes.util.find_library("cuda") is None:
        assert not probes["nvenc"].ok and "libcuda.so.1" in probes["nvenc"].reason


def test_auto_falls_back_to_x264_and_records_why():
    hardware = [p for p in probe_encoders(width=640, height=360) if p.name != "x264" and p.ok]
    if hardware:
        pytest.skip(f"{hardware[0].name} works here, so auto does not fall back")
    with open_encoder("auto", width=640, height=360) as encoder:
        assert encoder.name == "x264"
        assert [p.name for p in encoder.fallbacks] == ["vaapi", "nvenc"]
        assert all(not p.ok and p.reason for p in encoder.fallbacks)


def test_no_working_encoder_is_one_error_listing_every_backend():
    with pytest.raises(EncodeError) as caught:
        open_encoder("auto", width=640, height=360, preset="no-such-preset")
    assert caught.value.details[0].startswith("vaapi: ")
    assert caught.value.details[1].startswith("nvenc: ")
    assert caught.value.details[2].startswith("x264: ")
    assert "could not be opened" in caught.value.details[2]


def test_unknown_names_list_the_known_ones():
    with pytest.raises(EncodeError) as caught:
        open_encoder("quicksync", width=64, height=64)
    assert "x264" in caught.value.details[0]
    with pytest.raises(EncodeError) as caught:
        open_encoder("x264", width=64, height=64, codec="vp9")
    assert "h264, hevc" in caught.value.details[0]
    with pytest.raises(EncodeError):
        open_encoder("x264", width=64, height=64, codec="hevc")  # x264 is H.264 only


def test_round_trip_keeps_the_picture(x264):
    decoder = open_decoder("software")
    for index in range(12):
        source = pattern_nv12(W, H, index)
        (unit,) = x264.encode(source)
        (picture,) = decoder.decode(unit.data)
        assert (picture.width, picture.height) == (W, H)
        sy, su, sv = planes_yuv(source)
        dy, du, dv = planes_yuv(picture)
        assert psnr(sy, dy) > PSNR_FLOOR_DB
        assert psnr(su, du) > PSNR_FLOOR_DB and psnr(sv, dv) > PSNR_FLOOR_DB


def test_one_frame_in_one_packet_out(x264):
    decoder = open_decoder("software")
    pts = []
    for index in range(30):
        units = x264.encode(pattern_nv12(W, H, index))
        assert len(units) == 1 and isinstance(units[0], EncodedUnit)
        pts.append(units[0].pts)
        assert len(decoder.decode(units[0].data)) == 1
    assert pts == sorted(pts) and len(set(pts)) == 30
    assert x264.frames_encoded == 30 + 1  # and the probe frame
    assert decoder.frames_decoded == 30


def test_first_packet_is_an_idr_with_parameter_sets(x264):
    (unit,) = x264.encode(pattern_nv12(W, H, 0))
    assert unit.keyframe
    types = nal_types(unit.data)
    assert 7 in types and 8 in types and 5 in types  # SPS, PPS, IDR slice


def test_forced_keyframe_is_an_idr_a_fresh_decoder_starts_from(x264):
    units = [x264.encode(pattern_nv12(W, H, i), force_keyframe=(i == 6))[0] for i in range(10)]
    assert [u.keyframe for u in units] == [True] + [False] * 5 + [True] + [False] * 3
    assert {7, 8, 5} <= set(nal_types(units[6].data))
    assert 5 not in nal_types(units[7].data)
    late_joiner = open_decoder("software")  # a client that joins at the forced IDR
    for index in range(6, 10):
        (picture,) = late_joiner.decode(units[index].data)
        source = pattern_nv12(W, H, index)
        assert psnr(planes_yuv(source)[0], planes_yuv(picture)[0]) > PSNR_FLOOR_DB


def test_no_keyframes_unless_asked_even_on_a_scene_cut():
    with open_encoder("x264", width=320, height=192) as encoder:
        flags = []
        for index in range(90):
            frame = noisy_nv12(320, 192, index) if index == 45 else pattern_nv12(320, 192, index)
            flags.append(encoder.encode(frame)[0].keyframe)
    assert flags == [True] + [False] * 89


def test_explicit_gop_gives_periodic_keyframes():
    with open_encoder("x264", width=320, height=192, gop=10) as encoder:
        flags = [encoder.encode(pattern_nv12(320, 192, i))[0].keyframe for i in range(30)]
    assert [i for i, key in enumerate(flags) if key] == [0, 10, 20]


def test_bitstream_signals_bt709_limited_range(x264):
    (unit,) = x264.encode(pattern_nv12(W, H, 0))
    (picture,) = open_decoder("software").decode(unit.data)
    assert picture.colorspace == 1  # AVCOL_SPC_BT709
    assert picture.color_range == 1  # AVCOL_RANGE_MPEG (limited)
    assert picture.color_primaries == 1 and picture.color_trc == 1


def mean_size(encoder, start: int, count: int) -> tuple[float, list[bool]]:
    units = [encoder.encode(noisy_nv12(640, 360, start + i))[0] for i in range(count)]
    return float(np.mean([len(u.data) for u in units])), [u.keyframe for u in units]


def test_lower_bitrate_applies_in_place_without_a_keyframe():
    with open_encoder("x264", width=640, height=360, bitrate=8_000_000) as encoder:
        mean_size(encoder, 0, 5)
        before, _ = mean_size(encoder, 5, 20)
        assert encoder.set_bitrate(1_000_000) is True
        mean_size(encoder, 25, 10)  # let rate control settle
        after, keys = mean_size(encoder, 35, 20)
    assert not any(keys)
    assert after < before * 0.4
    assert after * 8 * 60 < 2_000_000  # near the new 1 Mbit/s at 60 fps


def test_bitrate_above_the_ceiling_reopens_with_an_idr():
    decoder = open_decoder("software")
    with open_encoder("x264", width=640, height=360, bitrate=1_000_000) as encoder:
        for i in range(5):
            decoder.decode(encoder.encode(noisy_nv12(640, 360, i))[0].data)
        low, _ = mean_size(encoder, 5, 10)
        assert encoder.set_bitrate(8_000_000) is False
        (unit,) = encoder.encode(noisy_nv12(640, 360, 15))
        assert unit.keyframe
        assert len(decoder.decode(unit.data)) == 1  # the same decoder carries on
        high, keys = mean_size(encoder, 16, 10)
    assert not any(keys) and high > low * 2
    assert encoder.bitrate == 8_000_000


def test_a_closed_encoder_says_so():
    encoder = open_encoder("x264", width=320, height=192)
    encoder.close()
    with pytest.raises(EncodeError, match="closed"):
        encoder.encode(pattern_nv12(320, 192))


def test_bad_input_frames_are_refused(x264):
    with pytest.raises(EncodeError, match="NV12 frame of the configured size"):
        x264.encode(pattern_nv12(W, H).reformat(format="yuv420p"))
    with pytest.raises(EncodeError, match="NV12 frame of the configured size"):
        x264.encode(pattern_nv12(640, 360))
    with pytest.raises(EncodeError):
        x264.set_bitrate(0)
    with pytest.raises(EncodeError, match="even"):
        open_encoder("x264", width=641, height=360)


def test_hevc_round_trip_one_in_one_out():
    if "libx265" not in av.codecs_available:
        pytest.skip("this FFmpeg build has no libx265")
    decoder = open_decoder("software", codec="hevc")
    with open_encoder("auto", width=640, height=360, codec="hevc") as encoder:
        assert encoder.name == "x265"
        for index in range(8):
            source = pattern_nv12(640, 360, index)
            (unit,) = encoder.encode(source, force_keyframe=(index == 4))
            assert unit.keyframe == (index in (0, 4))
            (picture,) = decoder.decode(unit.data)
            assert psnr(planes_yuv(source)[0], planes_yuv(picture)[0]) > PSNR_FLOOR_DB
        assert encoder.set_bitrate(2_000_000) is False  # libx265 cannot reconfigure
        assert encoder.encode(pattern_nv12(640, 360, 9))[0].keyframe


@pytest.mark.parametrize("name", ["vaapi", "nvenc", "x264", "x265"])
def test_every_option_we_pass_exists_in_the_ffmpeg_encoder(name):
    """Checked against the codec's own option table, so the hardware backends'
    arguments are right even where the hardware is not."""
    cls = ENCODERS[name]
    present = [c for c in cls.codec_names.values() if c in av.codecs_available]
    if not present:
        pytest.skip(f"this FFmpeg build has none of {', '.join(cls.codec_names.values())}")
    for codec_name in present:
        table = CodecContext.create(codec_name, "w").supported_options
        known = {o.name for o in table.private} | {o.name for o in table.generic}
        wanted = {"maxrate", "bufsize", *cls.private_options(None),
                  *cls.private_options(None, refresh=10)}  # intra refresh too
        assert wanted <= known, f"{codec_name} lacks {wanted - known}"


def test_an_unknown_option_is_refused():
    with pytest.raises(EncodeError) as caught:
        open_encoder("x264", width=320, height=192, no_such_option="1")
    assert "no_such_option" in caught.value.details[0]


def test_every_backend_is_registered_for_the_codecs_it_claims():
    assert {name: sorted(cls.codec_names) for name, cls in ENCODERS.items()} == {
        "vaapi": ["h264", "hevc"], "nvenc": ["h264", "hevc"],
        "x264": ["h264"], "x265": ["hevc"],
    }


def hardware_round_trip(name: str) -> None:
    decoder = open_decoder("software")
    with open_encoder(name, width=W, height=H) as encoder:
        for index in range(10):
            source = pattern_nv12(W, H, index)
            (unit,) = encoder.encode(source, force_keyframe=(index == 5))
            assert unit.keyframe == (index in (0, 5))
            (picture,) = decoder.decode(unit.data)
            assert psnr(planes_yuv(source)[0], planes_yuv(picture)[0]) > 30.0
        assert encoder.set_bitrate(4_000_000) in (True, False)
        assert len(encoder.encode(pattern_nv12(W, H, 11))) == 1


@pytest.mark.vaapi
def test_vaapi_real_encode():
    hardware_round_trip("vaapi")


@pytest.mark.nvenc
def test_nvenc_real_encode():
    hardware_round_trip("nvenc")
