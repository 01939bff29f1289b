"""Sealing and opening datagram payloads: vectors, replay window, every rejection."""

from __future__ import annotations

import os
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rootstream.crypto.seal import (
    FORGED,
    REPLAYED,
    SEAL_OVERHEAD,
    TOO_OLD,
    TRUNCATED,
    Opener,
    PacketRejected,
    Sealer,
)
from rootstream.errors import CryptoError
from rootstream.protocol.header import HEADER as WIRE_HEADER
from rootstream.protocol.header import (
    MAGIC,
    MAX_PAYLOAD,
    VERSION,
    PacketType,
    associated_data,
    decode_datagram,
    encode_datagram,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
# A real v1 ROOT header: VIDEO, sequence 7, timestamp 1000 ms, size 0x12, checksum abcd.
HEADER = bytes.fromhex("524f4f5401010007000003e80012abcd")

# Pinned in docs/SECURITY.md ("Packet sealing" vectors).
VECTORS = [
    # (direction, counter, payload, sealed)
    (0, 0x0102030405060708, b"rootstream",
     "01020304050607089d89ca8cd6f8daf971d2f52299907aa08a218790c5d8dbaeb7d2"),
    (1, 0, b"rootstream",
     "0000000000000000d929f29d7af294593469828ece7af3a3d0f88be84190ae3e155b"),
]


def _rejected(cause, opener, header, box):
    with pytest.raises(PacketRejected) as info:
        opener.open(header, box)
    assert (info.value.reason, str(info.value)) == cause
    assert isinstance(info.value, CryptoError)


def test_overhead_is_counter_plus_tag():
    assert SEAL_OVERHEAD == 24
    assert len(Sealer(KEY).seal(HEADER, b"x" * 1360)) == 1360 + SEAL_OVERHEAD


@pytest.mark.parametrize("direction,counter,payload,sealed", VECTORS)
def test_byte_exact_vectors(direction, counter, payload, sealed):
    assert Sealer(KEY, direction, counter=counter).seal(HEADER, payload).hex() == sealed
    assert Opener(KEY, direction).open(HEADER, bytes.fromhex(sealed)) == payload


def test_checksum_field_is_not_authenticated_so_the_crc_can_follow_sealing():
    box = Sealer(KEY).seal(HEADER, b"payload")
    final_header = HEADER[:14] + b"\x12\x34"
    assert Opener(KEY).open(final_header, box) == b"payload"


def test_counters_increase_and_directions_differ():
    sealer = Sealer(KEY)
    boxes = [sealer.seal(HEADER, b"same") for _ in range(3)]
    assert [int.from_bytes(b[:8], "big") for b in boxes] == [0, 1, 2]
    assert len(set(boxes)) == 3
    assert Sealer(KEY, 0).seal(HEADER, b"same") != Sealer(KEY, 1).seal(HEADER, b"same")
    _rejected(FORGED, Opener(KEY, 1), HEADER, Sealer(KEY, 0).seal(HEADER, b"same"))


def test_replay_is_rejected():
    sealer, opener = Sealer(KEY), Opener(KEY)
    box = sealer.seal(HEADER, b"once")
    assert opener.open(HEADER, box) == b"once"
    _rejected(REPLAYED, opener, HEADER, box)


def test_reordering_inside_the_window_is_accepted_once():
    sealer, opener = Sealer(KEY), Opener(KEY, window=64)
    boxes = [sealer.seal(HEADER, bytes([i])) for i in range(64)]
    order = list(range(63, -1, -1))  # fully reversed: oldest is exactly at the window edge
    assert [opener.open(HEADER, boxes[i])[0] for i in order] == order
    for i in (0, 31, 63):
        _rejected(REPLAYED, opener, HEADER, boxes[i])


def test_older_than_the_window_is_rejected():
    sealer, opener = Sealer(KEY), Opener(KEY, window=64)
    boxes = [sealer.seal(HEADER, b"p") for _ in range(65)]
    opener.open(HEADER, boxes[64])
    opener.open(HEADER, boxes[1])  # age 63: the last slot inside the window
    _rejected(TOO_OLD, opener, HEADER, boxes[0])  # age 64


def test_a_big_jump_clears_the_window():
    sealer, opener = Sealer(KEY), Opener(KEY, window=16)
    early = sealer.seal(HEADER, b"a")
    opener.open(HEADER, early)
    late = Sealer(KEY, counter=10_000).seal(HEADER, b"b")
    opener.open(HEADER, late)
    assert opener.highest_counter == 10_000
    _rejected(TOO_OLD, opener, HEADER, early)
    _rejected(REPLAYED, opener, HEADER, late)


def test_forgery_does_not_move_the_window():
    opener = Opener(KEY, window=16)
    genuine = Sealer(KEY).seal(HEADER, b"genuine")
    forged = Sealer(OTHER_KEY, counter=1 << 40).seal(HEADER, b"forged")
    _rejected(FORGED, opener, HEADER, forged)
    assert opener.open(HEADER, genuine) == b"genuine"


@pytest.mark.parametrize("cut", range(SEAL_OVERHEAD))
def test_truncated_box(cut):
    box = Sealer(KEY).seal(HEADER, b"")
    assert len(box) == SEAL_OVERHEAD
    _rejected(TRUNCATED, Opener(KEY), HEADER, box[:cut])


def test_truncating_a_longer_box_is_a_forgery():
    box = Sealer(KEY).seal(HEADER, b"0123456789")
    for cut in range(SEAL_OVERHEAD, len(box)):
        _rejected(FORGED, Opener(KEY), HEADER, box[:cut])


def test_every_bit_flip_of_a_small_box_is_rejected():
    box = Sealer(KEY, counter=5).seal(HEADER, b"tiny")
    for position in range(len(box)):
        for bit in range(8):
            flipped = bytearray(box)
            flipped[position] ^= 1 << bit
            opener = Opener(KEY)
            with pytest.raises(PacketRejected) as info:
                opener.open(HEADER, bytes(flipped))
            # A flipped counter bit names another nonce, so it fails authentication too.
            assert info.value.reason == "forged"


def test_wrong_key_is_rejected():
    _rejected(FORGED, Opener(OTHER_KEY), HEADER, Sealer(KEY).seal(HEADER, b"secret"))


@pytest.mark.parametrize("position", range(14))
def test_tampered_header_is_rejected(position):
    box = Sealer(KEY).seal(HEADER, b"payload")
    tampered = bytearray(HEADER)
    tampered[position] ^= 0x01
    _rejected(FORGED, Opener(KEY), bytes(tampered), box)


def test_bad_arguments_are_crypto_errors():
    with pytest.raises(CryptoError, match="session key must be 32 bytes"):
        Sealer(b"short")
    with pytest.raises(CryptoError, match="direction"):
        Opener(KEY, 2)
    with pytest.raises(CryptoError, match="packet header must be 16 bytes"):
        Sealer(KEY).seal(HEADER[:15], b"")
    with pytest.raises(CryptoError, match="packet header must be 16 bytes"):
        Opener(KEY).open(HEADER + b"x", b"")
    with pytest.raises(CryptoError, match="replay window"):
        Opener(KEY, window=0)


def test_counter_exhaustion_refuses_to_reuse_a_nonce():
    sealer = Sealer(KEY, counter=(1 << 64) - 1)
    sealer.seal(HEADER, b"last")
    with pytest.raises(CryptoError, match="2\\^64"):
        sealer.seal(HEADER, b"one too many")


def test_sealer_shared_by_two_threads_never_repeats_a_counter():
    sealer = Sealer(KEY)
    counters: list[list[int]] = [[], []]

    def send(slot):
        for _ in range(2000):
            counters[slot].append(int.from_bytes(sealer.seal(HEADER, b"x" * 64)[:8], "big"))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged = counters[0] + counters[1]
    assert sorted(merged) == list(range(4000))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_open_only_raises_crypto_error(box):
    opener = Opener(KEY)
    try:
        opener.open(HEADER, box)
    except CryptoError:
        pass
    else:  # pragma: no cover - a random box authenticating would be a 2^-128 event
        pytest.fail("a random box opened")


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=1384), st.binary(min_size=16, max_size=16))
def test_round_trip_any_payload_and_header(payload, header):
    box = Sealer(KEY).seal(header, payload)
    assert Opener(KEY).open(header, box) == payload


def test_sealed_datagram_through_the_protocol_layer():
    """The flow the host and client loops use: header pre-image -> seal ->
    encode_datagram (CRC over the box) -> decode_datagram -> open."""
    payload = os.urandom(MAX_PAYLOAD - SEAL_OVERHEAD)
    size = len(payload) + SEAL_OVERHEAD
    pre_image = WIRE_HEADER.pack(MAGIC, VERSION, PacketType.VIDEO, 9, 1234, size, 0)
    datagram = encode_datagram(PacketType.VIDEO, 9, 1234, Sealer(KEY, 1).seal(pre_image, payload))
    assert len(datagram) == 16 + MAX_PAYLOAD
    header, box = decode_datagram(datagram)
    assert associated_data(datagram) == pre_image  # both layers agree on the AD
    assert Opener(KEY, 1).open(datagram[:16], box) == payload


@pytest.mark.parametrize("direction,counter,payload,sealed", VECTORS)
def test_seal_parts_are_the_sealed_payload_split_after_the_counter(direction, counter, payload,
                                                                   sealed):
    parts = Sealer(KEY, direction, counter=counter).seal_parts(HEADER, memoryview(payload))
    assert len(parts[0]) == 8 and (parts[0] + parts[1]).hex() == sealed


@pytest.mark.parametrize("direction,counter,payload,sealed", VECTORS)
def test_open_reads_a_memoryview_into_the_datagram_in_place(direction, counter, payload, sealed):
    datagram = memoryview(HEADER + bytes.fromhex(sealed))
    assert Opener(KEY, direction).open(datagram[:16], datagram[16:]) == payload


def test_vectors_match_pynacl_which_still_does_the_handshake():
    """Sealer now uses cryptography's ChaCha20-Poly1305; PyNaCl's is the same
    construction, so boxes from either open with the other."""
    import nacl.bindings

    payload, ad = os.urandom(300), HEADER[:14] + b"\0\0"
    nonce = bytes(4) + (77).to_bytes(8, "big")
    box = Sealer(KEY, 0, counter=77).seal(HEADER, payload)
    assert box[8:] == nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt(
        payload, ad, nonce, KEY)


def test_opener_shared_by_two_threads_accepts_each_box_exactly_once():
    sealer, opener = Sealer(KEY), Opener(KEY, window=4096)
    boxes = [sealer.seal(HEADER, b"x" * 64) for _ in range(1500)]
    accepted: list[list[bytes]] = [[], []]
    rejected: list[list[str]] = [[], []]

    def receive(slot):
        for box in boxes:  # both threads try every box
            try:
                accepted[slot].append(opener.open(HEADER, box))
            except PacketRejected as exc:
                rejected[slot].append(exc.reason)

    threads = [threading.Thread(target=receive, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(accepted[0]) + len(accepted[1]) == len(boxes)
    assert set(rejected[0] + rejected[1]) <= {"replayed"}
    assert opener.highest_counter == len(boxes) - 1
