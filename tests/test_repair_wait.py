"""Repair on the client's side: the request's wire form, and the reassembler that
asks for lost fragments, holds later frames and gives up in time."""

import pytest

from rootstream.protocol import ProtocolError, VideoFragmenter, decode_control
from rootstream.protocol.repair import MAX_RANGES, RepairRequest, missing_ranges
from rootstream.protocol.repair_wait import RepairingReassembler

MS = 1_000_000


def test_missing_ranges_are_the_runs_of_absent_fragments():
    assert missing_ranges(bytearray([1, 0, 0, 1, 0])) == ((1, 2), (4, 1))
    assert missing_ranges(bytearray([1, 1])) == ()
    assert missing_ranges(bytearray([0, 1] * 40)) == tuple((i, 1) for i in range(0, 64, 2))


@pytest.mark.parametrize("raw, sentence", [
    (b"\x13\x00\x00\x00\x01\x01", "truncated"),
    (b"\x13\x00\x00\x00\x01\x01\x02\x00\x01\x00\x01", "truncated"),  # 2 ranges, 1 there
    (b"\x13\x00\x00\x00\x01\x01\x01\x00\x01\x00\x00", "impossible range"),  # count 0
    (b"\x13\x00\x00\x00\x01\x01\x01\xff\xff\x00\x02", "impossible range"),  # past 65535
    (b"\x13\x00\x00\x00\x01\x01" + bytes([MAX_RANGES + 1]) + b"\x00\x00\x00\x01" * 33,
     "too many ranges"),
])
def test_a_malformed_request_is_refused_with_its_sentence(raw, sentence):
    with pytest.raises(ProtocolError, match=sentence):
        decode_control(raw)


def test_indices_stay_inside_the_frame():
    assert RepairRequest(1, ((2, 3), (3, 10))).indices(6) == [2, 3, 4, 5]
    assert RepairRequest(1).indices(3) == [0, 1, 2]


def _frames(count, size=800, keyframes=()):
    fragmenter = VideoFragmenter(max_payload=120)  # 100-byte chunks: 8 fragments a frame
    return [fragmenter.fragment(bytes([i]) * size, keyframe=i in keyframes) for i in range(count)]


def _push_all(reassembler, payloads, now_ns):
    return [f for p in payloads if (f := reassembler.push(p, 0, now_ns)) is not None]


def test_a_short_frame_is_asked_for_and_later_frames_wait_for_it():
    r = RepairingReassembler()
    frames = _frames(4, keyframes={0})
    out = _push_all(r, frames[0], 0)
    out += _push_all(r, [p for i, p in enumerate(frames[1]) if i not in (2, 3, 4, 5)], MS)
    out += _push_all(r, frames[2], 2 * MS)  # its first fragment shows frame 1 is short
    assert [f.frame_id for f in out] == [0]
    assert r.held == 1
    (request,) = r.repairs_due(2 * MS)
    assert request == RepairRequest(1, ((2, 4),), attempt=1)
    assert r.repairs_due(3 * MS) == []  # not again before the retry time
    out = _push_all(r, [frames[1][i] for i in (2, 3, 4, 5)], 4 * MS)
    out += _push_all(r, frames[3], 5 * MS)
    assert [f.frame_id for f in out] == [1, 2, 3]
    assert all(f.lost_before == 0 for f in out)
    assert r.stats.frames_repaired == 1 and r.stats.frames_lost == 0
    assert r.rtt_ns < 15 * MS  # the 2 ms answer pulled the estimate down


def test_a_frame_never_seen_is_asked_for_whole():
    r = RepairingReassembler()
    frames = _frames(3, keyframes={0})
    _push_all(r, frames[0], 0)
    _push_all(r, frames[2], MS)
    assert r.repairs_due(MS) == [RepairRequest(1)]
    out = _push_all(r, frames[1], 3 * MS) + _push_all(r, frames[0][:1], 4 * MS)
    assert [f.frame_id for f in out] == [1, 2]


def test_the_wait_is_given_up_after_the_last_try():
    r = RepairingReassembler()
    frames = _frames(4, keyframes={0})
    _push_all(r, frames[0], 0)
    _push_all(r, frames[1][:3], MS)
    _push_all(r, frames[2], 2 * MS)
    now = 2 * MS
    tries = []
    while now < 200 * MS and not r.expire(now):
        tries += r.repairs_due(now)
        now += MS
    assert [t.attempt for t in tries] == [1, 2, 3]
    assert r.held == 0 and r.stats.repairs_failed == 1
    (late,) = _push_all(r, frames[3], now)
    assert late.frame_id == 3 and late.lost_before == 2  # the client asks for a keyframe
    assert r.stats.frames_lost == 2


def test_a_hold_longer_than_its_limit_is_given_up():
    r = RepairingReassembler(hold_ms=50, max_tries=10)
    frames = _frames(3, keyframes={0})
    _push_all(r, frames[0], 0)
    _push_all(r, frames[1][:3], MS)
    _push_all(r, frames[2], 2 * MS)
    assert r.expire(40 * MS) == 0
    assert r.expire(60 * MS) == 2


def test_a_keyframe_ends_the_wait():
    r = RepairingReassembler()
    frames = _frames(4, keyframes={0, 3})
    _push_all(r, frames[0], 0)
    _push_all(r, frames[1][:3], MS)
    _push_all(r, frames[2], 2 * MS)
    out = _push_all(r, frames[3], 3 * MS)
    assert [f.frame_id for f in out] == [3] and out[0].keyframe
    assert r.held == 0 and r.repairs_due(4 * MS) == []


def test_a_silent_short_frame_is_asked_for_by_the_timer():
    r = RepairingReassembler()
    frames = _frames(2, keyframes={0})
    _push_all(r, frames[0], 0)
    _push_all(r, frames[1][:5], MS)
    assert r.repairs_due(5 * MS) == []
    assert r.repairs_due(25 * MS) == [RepairRequest(1, ((5, 3),))]


def test_a_frame_short_after_its_last_fragment_is_asked_for_at_once():
    r = RepairingReassembler()
    fragmenter = VideoFragmenter(max_payload=120, fec_share=0.25)  # 8 data + 2 parity
    frames = [fragmenter.fragment(bytes([i]) * 800, keyframe=i == 0) for i in range(2)]
    _push_all(r, frames[0], 0)
    _push_all(r, [p for i, p in enumerate(frames[1]) if i not in (1, 2, 3)], MS)
    assert r.repairs_due(MS) == [RepairRequest(1, ((1, 3),))]


def test_frame_ids_that_wrap_are_released_in_order():
    r = RepairingReassembler()
    fragmenter = VideoFragmenter(max_payload=120, first_frame_id=0xFFFFFFFE)
    frames = [fragmenter.fragment(bytes([i]) * 800, keyframe=i == 0) for i in range(5)]
    _push_all(r, frames[0], 0)  # id 0xFFFFFFFE
    _push_all(r, frames[1][:4], MS)  # 0xFFFFFFFF, short
    for i in (2, 3, 4):  # ids 0, 1, 2: held
        _push_all(r, frames[i], (1 + i) * MS)
    assert r.held == 3
    assert r.repairs_due(6 * MS) == [RepairRequest(0xFFFFFFFF, ((4, 4),))]
    out = _push_all(r, frames[1][4:], 7 * MS) + _push_all(r, frames[0][:3], 8 * MS)
    assert [f.frame_id for f in out] == [0xFFFFFFFF, 0, 1, 2]
