"""The AUDIO payload codec: byte-exact vectors, round trips, every truncation, fuzz."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from protocol_vectors import DOCS, load_vectors

from rootstream.errors import ProtocolError
from rootstream.protocol.audio import (
    AUDIO_HEADER,
    AUDIO_HEADER_SIZE,
    MAX_AUDIO_DATA,
    MAX_OPUS_FRAME,
    AudioPayload,
)
from rootstream.protocol.header import MAX_PAYLOAD


def _vectors() -> dict[str, list[bytes]]:
    # The lead merges docs/AUDIO.md into docs/PROTOCOL.md; read whichever has them.
    for name in ("AUDIO.md", "PROTOCOL.md"):
        if (DOCS / name).exists():
            vectors = {k: v for k, v in load_vectors(name).items() if k.startswith("audio-")}
            if vectors:
                return vectors
    raise AssertionError("no audio vectors in docs/")


VECTORS = _vectors()
EXPECTED = {
    "audio-primary-only": AudioPayload(2, 480, 76800, 0x0123456789AB, bytes.fromhex("f4deadbeef")),
    "audio-redundant": AudioPayload(2, 480, 0xFFFFFE20, 1_000_000_000, bytes.fromhex("f40102"),
                                    bytes.fromhex("f4a0a1a2a3"), 480),
    "audio-mono-5ms": AudioPayload(1, 240, 7, 1, b"\xe8"),
}


def test_header_is_22_bytes():
    assert AUDIO_HEADER_SIZE == AUDIO_HEADER.size == 22
    assert MAX_AUDIO_DATA == MAX_PAYLOAD - 22


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_vectors_parse_and_pack_byte_exact(name):
    (data,) = VECTORS[name]
    payload = AudioPayload.parse(data)
    assert payload == EXPECTED[name]
    assert bytes(payload) == data


def test_redundant_frame_position_wraps():
    payload = EXPECTED["audio-redundant"]
    assert payload.redundant_position == 0xFFFFFC40
    assert AudioPayload(2, 480, 100, 0, b"\xf4", b"\xf4", 480).redundant_position == \
        (100 - 480) & 0xFFFFFFFF


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_truncation_is_rejected_with_its_exact_message(name):
    (data,) = VECTORS[name]
    for cut in range(len(data)):
        with pytest.raises(ProtocolError) as info:
            AudioPayload.parse(data[:cut])
        expected = ("audio payload is shorter than its header" if cut < AUDIO_HEADER_SIZE
                    else "audio payload length disagrees with its header")
        assert str(info.value) == expected


def _raw(flags=0, channels=2, samples=480, position=0, captured=0, primary=b"\xf4",
         redundant=b"", redundant_samples=0, primary_len=None, redundant_len=None) -> bytes:
    head = AUDIO_HEADER.pack(
        flags, channels, samples, position, captured,
        len(primary) if primary_len is None else primary_len,
        len(redundant) if redundant_len is None else redundant_len, redundant_samples)
    return head + primary + redundant


@pytest.mark.parametrize("data, message", [
    (_raw(flags=0x02), "audio payload has unknown flags set"),
    (_raw(flags=0x80), "audio payload has unknown flags set"),
    (_raw(flags=0x01), "audio payload redundancy flag disagrees with its length"),
    (_raw(flags=0, redundant=b"\xf4", redundant_samples=480),
     "audio payload redundancy flag disagrees with its length"),
    (_raw(primary=b"\xf4\x00", primary_len=1), "audio payload length disagrees with its header"),
    (_raw(channels=0), "audio payload channel count must be 1 or 2"),
    (_raw(channels=3), "audio payload channel count must be 1 or 2"),
    (_raw(samples=119), "audio payload frame duration is out of range"),
    (_raw(samples=5761), "audio payload frame duration is out of range"),
    (_raw(primary=b""), "audio payload frame size is out of range"),
    (_raw(primary=bytes(MAX_OPUS_FRAME + 1)), "audio payload frame size is out of range"),
    (_raw(flags=1, primary=bytes(1000), redundant=bytes(1000), redundant_samples=480),
     "audio payload does not fit one datagram"),
    (_raw(flags=1, redundant=b"\xf4", redundant_samples=0),
     "audio payload redundant frame duration is out of range"),
    (_raw(flags=1, redundant=b"\xf4", redundant_samples=9000),
     "audio payload redundant frame duration is out of range"),
    (_raw(redundant_samples=480), "audio payload names samples for a missing redundant frame"),
])
def test_invalid_fields_are_rejected_with_fixed_messages(data, message):
    with pytest.raises(ProtocolError) as info:
        AudioPayload.parse(data)
    assert str(info.value) == message


@pytest.mark.parametrize("payload", [
    AudioPayload(3, 480, 0, 0, b"\xf4"),
    AudioPayload(2, 480, 0, 0, b""),
    AudioPayload(2, 480, 1 << 32, 0, b"\xf4"),
    AudioPayload(2, 480, 0, -1, b"\xf4"),
    AudioPayload(2, 480, 0, 0, b"\xf4", b"\xf4", 0),
])
def test_packing_an_invalid_payload_is_a_programming_error(payload):
    with pytest.raises(ValueError):
        payload.pack()


frames = st.binary(min_size=1, max_size=600)


@given(channels=st.sampled_from([1, 2]), samples=st.integers(120, 5760),
       position=st.integers(0, 0xFFFFFFFF), captured=st.integers(0, 2**64 - 1),
       primary=frames, redundant=st.one_of(st.just(b""), frames),
       redundant_samples=st.integers(120, 5760))
def test_round_trip(channels, samples, position, captured, primary, redundant,
                    redundant_samples):
    payload = AudioPayload(channels, samples, position, captured, primary, redundant,
                           redundant_samples if redundant else 0)
    data = payload.pack()
    assert len(data) <= MAX_PAYLOAD
    assert AudioPayload.parse(data) == payload
    assert AudioPayload.parse(memoryview(data)) == payload


@given(st.binary(max_size=MAX_PAYLOAD))
def test_arbitrary_bytes_parse_or_raise_protocol_error(data):
    try:
        payload = AudioPayload.parse(data)
    except ProtocolError:
        return
    assert payload.pack() == data


@given(st.binary(min_size=AUDIO_HEADER_SIZE, max_size=AUDIO_HEADER_SIZE),
       st.binary(max_size=64))
def test_arbitrary_headers_with_consistent_lengths(head, body):
    # Make the length fields agree with the body so fuzzing reaches the later checks.
    split = len(body) // 2
    fields = list(AUDIO_HEADER.unpack(head))
    fields[5], fields[6] = split, len(body) - split
    data = AUDIO_HEADER.pack(*fields) + body
    try:
        payload = AudioPayload.parse(data)
    except ProtocolError:
        return
    assert payload.pack() == data
    assert struct.unpack_from("!B", data)[0] in (0, 1)
