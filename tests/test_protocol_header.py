import binascii
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rootstream.protocol import (
    HEADER_SIZE,
    MAX_PAYLOAD,
    PacketType,
    ProtocolError,
    associated_data,
    decode_datagram,
    encode_datagram,
)
from rootstream.protocol.header import HEADER, MAGIC, header_pre_image, join_datagram


def test_header_is_16_bytes():
    assert HEADER_SIZE == 16 and HEADER.size == 16


def test_checksum_is_crc16_ccitt_false_over_zeroed_header_then_payload():
    datagram = encode_datagram(PacketType.VIDEO, 5, 6, b"payload")
    zeroed = datagram[:14] + b"\0\0" + datagram[16:]
    assert struct.unpack_from("!H", datagram, 14)[0] == binascii.crc_hqx(zeroed, 0xFFFF)


@given(
    ptype=st.sampled_from(list(PacketType)),
    seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=MAX_PAYLOAD),
)
def test_round_trip(ptype, seq, ts, payload):
    datagram = encode_datagram(ptype, seq, ts, payload)
    header, body = decode_datagram(datagram)
    assert (header.ptype, header.sequence, header.timestamp_ms) == (ptype, seq, ts)
    assert bytes(body) == payload and header.payload_size == len(payload)


def test_sequence_and_timestamp_wrap_when_encoding():
    header, _ = decode_datagram(encode_datagram(PacketType.AUDIO, 0x10001, 0x1_0000_0002, b""))
    assert header.sequence == 1 and header.timestamp_ms == 2


def test_oversized_payload_is_a_programming_error():
    with pytest.raises(ValueError):
        encode_datagram(PacketType.VIDEO, 0, 0, bytes(MAX_PAYLOAD + 1))


def _corrupt(datagram: bytes, offset: int, value: int) -> bytes:
    out = bytearray(datagram)
    out[offset] = value
    return bytes(out)


def _reseal(datagram: bytearray) -> bytes:
    """Recompute the checksum so a test reaches the check it targets."""
    datagram[14:16] = b"\0\0"
    datagram[14:16] = struct.pack("!H", binascii.crc_hqx(bytes(datagram), 0xFFFF))
    return bytes(datagram)


GOOD = encode_datagram(PacketType.CONTROL, 1, 2, b"abc")


@pytest.mark.parametrize("bad, message", [
    (GOOD[:15], "ROOT datagram is shorter than its header"),
    (_corrupt(GOOD, 0, 0x51), "ROOT datagram has a wrong magic"),
    (_corrupt(GOOD, 4, 2), "ROOT datagram has an unsupported version"),
    (_corrupt(GOOD, 5, 0x05), "ROOT datagram has an unknown packet type"),
    (_corrupt(GOOD, 5, 0x00), "ROOT datagram has an unknown packet type"),
    (GOOD + b"x", "ROOT payload size disagrees with the datagram length"),
    (GOOD[:-1], "ROOT payload size disagrees with the datagram length"),
    (_corrupt(GOOD, 18, ord("X")), "ROOT datagram has a bad checksum"),
    (_corrupt(GOOD, 15, GOOD[15] ^ 1), "ROOT datagram has a bad checksum"),
])
def test_each_defect_has_its_own_message(bad, message):
    with pytest.raises(ProtocolError) as info:
        decode_datagram(bad)
    assert str(info.value) == message


def test_payload_over_limit_is_rejected_before_length_check():
    big = bytearray(HEADER.pack(MAGIC, 1, 1, 0, 0, MAX_PAYLOAD + 1, 0)) + bytes(MAX_PAYLOAD + 1)
    with pytest.raises(ProtocolError, match="ROOT payload size exceeds the limit"):
        decode_datagram(_reseal(big))


def test_every_prefix_of_a_datagram_is_rejected():
    datagram = encode_datagram(PacketType.INPUT, 9, 9, b"0123456789")
    for cut in range(len(datagram)):
        with pytest.raises(ProtocolError):
            decode_datagram(datagram[:cut])


@given(st.binary(max_size=1500))
def test_random_bytes_raise_only_protocol_error(data):
    try:
        decode_datagram(data)
    except ProtocolError:
        pass


@given(st.binary(min_size=16, max_size=200), st.integers(0, 199), st.integers(1, 255))
def test_any_single_byte_change_is_detected(payload, where, flip):
    datagram = encode_datagram(PacketType.VIDEO, 1, 1, payload[:MAX_PAYLOAD])
    where %= len(datagram)
    with pytest.raises(ProtocolError):
        decode_datagram(_corrupt(datagram, where, datagram[where] ^ flip))


def test_associated_data_is_the_header_with_checksum_zeroed():
    datagram = encode_datagram(PacketType.VIDEO, 3, 4, b"xyz")
    assert associated_data(datagram) == datagram[:14] + b"\0\0"


# -- join_datagram (native) against the Python definition of a datagram -------------------


def _reference_datagram(ptype: int, seq: int, ts: int, payload: bytes) -> bytes:
    """docs/PROTOCOL.md §2 written out in plain Python: pack the header with a
    zero checksum, append the payload, then write the CRC over all of it."""
    buf = bytearray(HEADER.pack(MAGIC, 1, ptype, seq & 0xFFFF, ts & 0xFFFFFFFF, len(payload), 0))
    buf += payload
    buf[14:16] = struct.pack("!H", binascii.crc_hqx(bytes(buf), 0xFFFF))
    return bytes(buf)


@given(
    ptype=st.sampled_from(list(PacketType)),
    seq=st.integers(0, 0x1FFFF),
    ts=st.integers(0, 0x1_FFFF_FFFF),
    parts=st.lists(st.binary(max_size=MAX_PAYLOAD // 3), max_size=3),
)
def test_join_datagram_is_byte_exact_with_the_python_definition(ptype, seq, ts, parts):
    payload = b"".join(parts)
    want = _reference_datagram(ptype, seq, ts, payload)
    pre_image = header_pre_image(ptype, seq, ts, len(payload))
    assert pre_image == want[:14] + b"\0\0"
    assert join_datagram(pre_image, *parts) == want
    assert join_datagram(pre_image, *(memoryview(p) for p in parts)) == want
    assert encode_datagram(ptype, seq, ts, payload) == want


def test_join_datagram_ignores_whatever_checksum_the_header_carries():
    pre_image = header_pre_image(PacketType.VIDEO, 1, 2, 3)
    assert join_datagram(pre_image[:14] + b"\xab\xcd", b"abc") == join_datagram(pre_image, b"abc")


@pytest.mark.parametrize("args, error, message", [
    ((), TypeError, "expects a header and at most 3 parts"),
    ((bytes(16), b"", b"", b"", b""), TypeError, "expects a header and at most 3 parts"),
    ((bytes(15),), ValueError, "the header must be 16 bytes"),
    ((bytes(16), b"x"), ValueError, "payload_size disagrees with the parts"),
    ((header_pre_image(PacketType.VIDEO, 0, 0, 2), b"x"), ValueError, "payload_size disagrees"),
    ((bytes(16), "text"), TypeError, "bytes-like"),
])
def test_join_datagram_refuses_what_it_cannot_frame(args, error, message):
    with pytest.raises(error, match=message):
        join_datagram(*args)


@pytest.mark.parametrize("args, message", [
    ((PacketType.VIDEO, 0, 0, MAX_PAYLOAD + 1), "exceeds the 1384-byte limit"),
    ((5, 0, 0, 0), "unknown packet type"),
    ((0, 0, 0, 0), "unknown packet type"),
])
def test_header_pre_image_refuses_programming_errors(args, message):
    with pytest.raises(ValueError, match=message):
        header_pre_image(*args)
