"""Decoders with real PyAV codecs: low delay, probing, and hostile bitstreams."""

from __future__ import annotations

import ctypes.util
import glob
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rootstream.decode import DECODERS, open_decoder, probe_decoders
from rootstream.encode import open_encoder, pattern_nv12
from rootstream.errors import DecodeError

W, H = 640, 360


@pytest.fixture(scope="module")
def stream() -> list[bytes]:
    """Twelve access units: an IDR, P-frames, a forced IDR at 8, P-frames."""
    with open_encoder("x264", width=W, height=H) as encoder:
        return [encoder.encode(pattern_nv12(W, H, i), force_keyframe=(i == 8))[0].data
                for i in range(12)]


def decode_or_reject(decoder, data: bytes) -> None:
    """The only two outcomes allowed for any input: pictures, or DecodeError."""
    try:
        frames = decoder.decode(data)
    except DecodeError:
        return
    assert isinstance(frames, list)


def assert_still_decodes(decoder, stream) -> None:
    decoder.flush()
    assert len(decoder.decode(stream[0])) == 1
    assert len(decoder.decode(stream[1])) == 1


def test_probe_software_works_and_hardware_says_why():
    probes = {p.name: p for p in probe_decoders()}
    assert list(probes) == ["vaapi", "nvdec", "software"]
    assert probes["software"].ok
    if not glob.glob("/dev/dri/renderD*"):
        assert not probes["vaapi"].ok and "/dev/dri/renderD*" in probes["vaapi"].reason
    if ctypes.util.find_library("cuda") is None:
        assert not probes["nvdec"].ok and "libcuda.so.1" in probes["nvdec"].reason


def test_auto_falls_back_to_software_with_reasons():
    if any(p.ok for p in probe_decoders() if p.name != "software"):
        pytest.skip("a hardware decoder works here")
    decoder = open_decoder("auto")
    assert decoder.name == "software" and not decoder.is_hardware
    assert [p.name for p in decoder.fallbacks] == ["vaapi", "nvdec"]
    assert all(p.reason for p in decoder.fallbacks)


def test_unknown_names_are_refused():
    with pytest.raises(DecodeError) as caught:
        open_decoder("dxva2")
    assert all(name in caught.value.details[0] for name in DECODERS)
    with pytest.raises(DecodeError, match="unknown video codec"):
        open_decoder("software", codec="av1")


def test_each_access_unit_gives_its_picture_at_once(stream):
    decoder = open_decoder("software")
    for data in stream:
        (picture,) = decoder.decode(data)
        assert (picture.width, picture.height) == (W, H)
    assert decoder.flush() == []  # nothing was held back
    assert decoder.frames_decoded == len(stream)


def test_flush_resets_for_a_new_stream(stream):
    decoder = open_decoder("software")
    decoder.decode(stream[0])
    decoder.flush()
    with open_encoder("x264", width=320, height=192) as other:
        (unit,) = other.encode(pattern_nv12(320, 192))
    (picture,) = decoder.decode(unit.data)
    assert (picture.width, picture.height) == (320, 192)


def test_empty_unit_is_an_error_not_end_of_stream(stream):
    decoder = open_decoder("software")
    with pytest.raises(DecodeError, match="empty"):
        decoder.decode(b"")
    assert decoder.errors == 1
    assert_still_decodes(decoder, stream)


def test_a_closed_decoder_says_so(stream):
    decoder = open_decoder("software")
    decoder.close()
    with pytest.raises(DecodeError, match="closed"):
        decoder.decode(stream[0])


def test_garbage_is_rejected_and_counted(stream):
    decoder = open_decoder("software")
    decoder.decode(stream[0])
    with pytest.raises(DecodeError, match="could not be decoded"):
        decoder.decode(b"\x00\x00\x01\x67" + b"\xff" * 64)  # an SPS that is all ones
    assert decoder.errors == 1
    assert_still_decodes(decoder, stream)


def test_every_truncation_of_a_keyframe_is_survived(stream):
    decoder = open_decoder("software")
    keyframe = stream[0]
    for cut in range(1, len(keyframe), max(1, len(keyframe) // 150)):
        decode_or_reject(decoder, keyframe[:cut])
    assert_still_decodes(decoder, stream)


def test_bit_flips_in_p_frames_are_survived(stream):
    decoder = open_decoder("software")
    rng = random.Random(7)
    for round_ in range(60):
        data = bytearray(stream[1 + round_ % 7])
        for _ in range(1 + round_ % 5):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        decode_or_reject(decoder, bytes(data))
    assert_still_decodes(decoder, stream)


def test_a_cut_off_p_frame_is_counted(stream):
    decoder = open_decoder("software")
    decoder.decode(stream[0])
    decode_or_reject(decoder, stream[1][:len(stream[1]) // 2])
    assert decoder.errors + decoder.corrupt_frames == 1


def test_a_p_frame_before_any_keyframe_yields_nothing_usable(stream):
    decoder = open_decoder("software")
    decode_or_reject(decoder, stream[3])
    (picture,) = decoder.decode(stream[8])  # the forced IDR recovers the stream
    assert picture.width == W


@settings(max_examples=80, deadline=None)
@given(data=st.binary(min_size=1, max_size=2048))
def test_fuzzed_bytes_never_crash(data):
    decoder = _fuzz_decoder()
    decode_or_reject(decoder, data)
    decode_or_reject(decoder, b"\x00\x00\x00\x01" + data)


_decoders: list = []


def _fuzz_decoder():
    # One decoder for all examples: state carried between garbage inputs is
    # part of what is being fuzzed.
    if not _decoders:
        _decoders.append(open_decoder("software"))
    return _decoders[0]


def test_hevc_decodes_one_for_one():
    with open_encoder("x265", width=W, height=H, codec="hevc") as encoder:
        units = [encoder.encode(pattern_nv12(W, H, i))[0].data for i in range(5)]
    decoder = open_decoder("auto", codec="hevc")
    assert [len(decoder.decode(u)) for u in units] == [1] * 5


@pytest.mark.vaapi
def test_vaapi_real_decode(stream):
    decoder = open_decoder("vaapi")
    assert decoder.is_hardware
    assert [len(decoder.decode(u)) for u in stream] == [1] * len(stream)


@pytest.mark.nvdec
def test_nvdec_real_decode(stream):
    decoder = open_decoder("nvdec")
    assert [len(decoder.decode(u)) for u in stream] == [1] * len(stream)
