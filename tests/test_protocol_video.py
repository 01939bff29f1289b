import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rootstream.protocol import (
    MAX_PAYLOAD,
    FragmentHeader,
    ProtocolError,
    Reassembler,
    VideoFragmenter,
)
from rootstream.protocol.video import SUBHEADER_SIZE, plan_fec_groups


def _feed(reassembler, payloads, now=0):
    frames = []
    for payload in payloads:
        frame = reassembler.push(payload, capture_ms=1234, now_ns=now)
        if frame is not None:
            frames.append(frame)
    return frames


@pytest.mark.parametrize("size", [1, 1000, 1364, 1365, 20_000, 400_000, 1_000_000])
def test_every_frame_size_fits_in_datagrams_and_round_trips(size):
    data = os.urandom(size)
    payloads = VideoFragmenter().fragment(data, keyframe=True, host_us=4200)
    assert all(len(p) <= MAX_PAYLOAD for p in payloads)
    assert all(len(p) > SUBHEADER_SIZE for p in payloads)
    (frame,) = _feed(Reassembler(), payloads)
    assert bytes(frame.data) == data
    assert frame.keyframe and frame.host_us == 4200 and frame.capture_ms == 1234
    assert frame.lost_before == 0 and not frame.recovered


def test_fragments_are_evenly_sized():
    payloads = VideoFragmenter().fragment(bytes(1365), keyframe=False)
    assert [len(p) - SUBHEADER_SIZE for p in payloads] == [683, 682]


def test_shuffled_and_duplicated_fragments_give_the_frame_once():
    data = os.urandom(50_000)
    payloads = VideoFragmenter().fragment(data, keyframe=False)
    mixed = payloads + payloads[:10]
    random.Random(3).shuffle(mixed)
    reassembler = Reassembler()
    frames = _feed(reassembler, mixed)
    assert len(frames) == 1 and bytes(frames[0].data) == data
    assert reassembler.stats.duplicates + reassembler.stats.late == 10


def test_fec_rebuilds_lost_fragments():
    data = os.urandom(100_000)
    payloads = VideoFragmenter(fec_share=0.2).fragment(data, keyframe=True)
    header = FragmentHeader.parse(payloads[0])
    assert header.parity_count == 15 and header.fec_groups == 3  # 74 data fragments
    survivors = payloads[5:]  # the first five data fragments are lost
    reassembler = Reassembler()
    (frame,) = _feed(reassembler, survivors)
    assert bytes(frame.data) == data and frame.recovered
    assert reassembler.stats.frames_recovered == 1


def test_fec_groups_interleave_so_a_burst_spreads_across_them():
    assert plan_fec_groups(20, 2) == 1
    assert plan_fec_groups(200, 40) == 7  # groups of at most 32 data fragments
    assert plan_fec_groups(100, 2) == 4
    assert plan_fec_groups(8000, 300) == 250
    assert plan_fec_groups(65535, 13107) == 0  # beyond what a u8 group count can carry
    assert plan_fec_groups(5, 0) == 0
    # Every group gets parity: with a tiny share the parity count rises to the group count.
    payloads = VideoFragmenter(fec_share=0.01).fragment(bytes(200_000), keyframe=False)
    head = FragmentHeader.parse(payloads[0])
    assert head.fec_groups == 5 and head.parity_count == 5
    data = os.urandom(1_000_000)  # ~734 data fragments, several groups
    payloads = VideoFragmenter(fec_share=0.2).fragment(data, keyframe=True)
    header = FragmentHeader.parse(payloads[0])
    assert header.fec_groups > 1
    survivors = payloads[:100] + payloads[160:]  # a burst of 60 consecutive losses
    (frame,) = _feed(Reassembler(), survivors)
    assert bytes(frame.data) == data


def test_small_frames_get_at_least_two_parity_fragments():
    payloads = VideoFragmenter(fec_share=0.2).fragment(b"tiny", keyframe=False)
    assert len(payloads) == 3
    (frame,) = _feed(Reassembler(), payloads[1:])  # the only data fragment lost
    assert bytes(frame.data) == b"tiny"


def test_a_newer_complete_frame_gives_up_older_ones_and_reports_the_loss():
    fragmenter = VideoFragmenter()
    first = fragmenter.fragment(os.urandom(5000), keyframe=True)
    second = fragmenter.fragment(os.urandom(5000), keyframe=False)
    third = fragmenter.fragment(os.urandom(5000), keyframe=False)
    reassembler = Reassembler()
    frames = _feed(reassembler, first + second[1:] + third)
    assert [f.frame_id for f in frames] == [0, 2]
    assert frames[1].lost_before == 1
    assert reassembler.stats.frames_lost == 1
    assert _feed(reassembler, second[:1]) == []  # the straggler is late, not a new frame
    assert reassembler.stats.late == 1


def test_frames_never_seen_at_all_are_counted_lost():
    fragmenter = VideoFragmenter()
    frames = [fragmenter.fragment(bytes([i]) * 3000, keyframe=False) for i in range(5)]
    reassembler = Reassembler()
    emitted = _feed(reassembler, frames[0] + frames[4])
    assert emitted[1].lost_before == 3
    assert reassembler.stats.frames_lost == 3


def test_frame_ids_wrap():
    fragmenter = VideoFragmenter(first_frame_id=0xFFFFFFFE)
    reassembler = Reassembler()
    ids = [f.frame_id for i in range(4)
           for f in _feed(reassembler, fragmenter.fragment(b"x" * 2000, keyframe=False))]
    assert ids == [0xFFFFFFFE, 0xFFFFFFFF, 0, 1]
    assert reassembler.stats.frames_lost == 0


def test_stale_incomplete_frames_expire():
    payloads = VideoFragmenter().fragment(os.urandom(5000), keyframe=False)
    reassembler = Reassembler(max_age_ms=100)
    _feed(reassembler, payloads[:2], now=0)
    assert reassembler.expire(now_ns=50_000_000) == 0
    assert reassembler.expire(now_ns=150_000_000) == 1
    assert reassembler.pending_bytes == 0 and reassembler.stats.frames_lost == 1


def test_memory_stays_bounded_under_a_flood_of_huge_frame_starts():
    reassembler = Reassembler(max_pending_bytes=4 * 1024 * 1024)
    for frame_id in range(500):
        # One fragment of a frame that claims to be 3 MB: never completes.
        head = FragmentHeader(frame_id, 3_000_000, 0, 2400, 0, 0, 0, 0)
        _feed(reassembler, [head.pack() + bytes(head.chunk_size)])
        assert reassembler.pending_bytes <= 4 * 1024 * 1024
    assert reassembler.stats.evicted_for_memory >= 490


def test_frames_above_the_size_limit_are_dropped():
    reassembler = Reassembler(max_frame_size=10_000)
    payloads = VideoFragmenter().fragment(bytes(20_000), keyframe=True)
    assert _feed(reassembler, payloads) == []
    assert reassembler.stats.malformed == len(payloads)


@pytest.mark.parametrize("fields, message", [
    ((0, 0, 0, 1, 0, 0, 0, 0), "video fragment describes an empty frame"),
    ((0, 10, 0, 0, 0, 0, 0, 0), "video fragment describes an empty frame"),
    ((0, 9, 0, 4, 0, 0, 0, 0), "video fragment count disagrees with the frame size"),
    ((0, 10, 0, 2, 2, 0, 0, 0), "video fragment has an impossible FEC layout"),
    ((0, 10, 0, 2, 0, 0, 1, 0), "video fragment has an impossible FEC layout"),
    ((0, 10, 2, 2, 0, 0, 0, 0), "video fragment index is out of range"),
    ((0, 10, 0, 2, 1, 2, 2, 0), "video fragment has an impossible FEC layout"),
    ((0, 10, 1, 2, 1, 2, 1, 0), "video fragment index is out of range"),
])
def test_sub_header_defects(fields, message):
    payload = FragmentHeader(*fields).pack() + bytes(5)
    with pytest.raises(ProtocolError) as info:
        FragmentHeader.parse(payload)
    assert str(info.value) == message


def test_wrong_fragment_length_and_truncation():
    payload = VideoFragmenter().fragment(bytes(3000), keyframe=False)[0]
    for cut in range(len(payload)):
        with pytest.raises(ProtocolError):
            FragmentHeader.parse(payload[:cut])
    with pytest.raises(ProtocolError, match="length disagrees"):
        FragmentHeader.parse(payload + b"x")


def test_fragment_that_disagrees_with_its_frame_is_dropped():
    payloads = VideoFragmenter().fragment(bytes(3000), keyframe=False)
    liar = FragmentHeader(0, 3000, 1, 3, 0, 1, 0, 0).pack() + bytes(1000)
    reassembler = Reassembler()
    _feed(reassembler, [payloads[0], liar])
    assert reassembler.stats.inconsistent == 1


frame_sizes = st.integers(1, 30_000)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(frame_sizes, min_size=1, max_size=5),
    fec=st.sampled_from([0.0, 0.2, 0.5]),
    seed=st.integers(0, 2**32 - 1),
    loss=st.floats(0.0, 0.3),
    dup=st.floats(0.0, 0.3),
    corrupt=st.floats(0.0, 0.1),
)
def test_hostile_mix_never_yields_a_wrong_frame(sizes, fec, seed, loss, dup, corrupt):
    rng = random.Random(seed)
    fragmenter = VideoFragmenter(fec_share=fec)
    originals = {}
    stream = []
    for size in sizes:
        data = rng.randbytes(size)
        frame_id = fragmenter.next_frame_id
        originals[frame_id] = data
        stream.extend(fragmenter.fragment(data, keyframe=rng.random() < 0.5))
    mixed = []
    for payload in stream:
        if rng.random() < loss:
            continue
        if rng.random() < corrupt:
            payload = bytearray(payload)
            payload[rng.randrange(len(payload))] ^= 1 + rng.randrange(255)
            payload = bytes(payload)
        mixed.append(payload)
        if rng.random() < dup:
            mixed.append(payload)
    # Local reordering, as a LAN does it: swap neighbours.
    for i in range(len(mixed) - 1):
        if rng.random() < 0.2:
            mixed[i], mixed[i + 1] = mixed[i + 1], mixed[i]
    reassembler = Reassembler(max_pending_bytes=1_000_000)
    seen = set()
    for frame in _feed(reassembler, mixed):
        assert frame.frame_id not in seen
        seen.add(frame.frame_id)
        if corrupt == 0.0:
            assert bytes(frame.data) == originals[frame.frame_id]
    assert reassembler.pending_bytes <= 1_000_000 + 30_000 * 2


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=1400), max_size=30))
def test_random_payloads_are_counted_not_raised(payloads):
    reassembler = Reassembler()
    _feed(reassembler, payloads)
    stats = reassembler.stats
    assert stats.fragments == len(payloads)
