"""Pacing: the schedule, its grouping, and a paced frame over a real socket."""

from __future__ import annotations

import socket
import time

import pytest

from rootstream.net.pacing import PacedSender, pace_offsets, slots

FRAME_60 = 16_666_667


def test_a_small_frame_leaves_at_once():
    plan = pace_offsets([1400] * 5, bitrate_bps=10e6, frame_interval_ns=FRAME_60)
    assert plan.rate_bps == 0 and plan.offsets_ns == [0] * 5


def test_a_large_frame_is_spread_at_twice_the_bitrate_after_the_burst():
    sizes = [1400] * 12
    plan = pace_offsets(sizes, bitrate_bps=10e6, frame_interval_ns=FRAME_60,
                        burst_bytes=4 * 1400)
    assert plan.rate_bps == 20e6
    assert plan.offsets_ns[:5] == [0] * 5  # the burst, and the first datagram, go at once
    gap = 1400 * 8 * 1e9 / 20e6
    for i in range(5, 12):
        assert plan.offsets_ns[i] == pytest.approx((i - 4) * gap, abs=1)
    assert plan.offsets_ns == sorted(plan.offsets_ns)


def test_an_idr_still_finishes_within_the_budget_of_the_frame_interval():
    sizes = [1400] * 300  # 420 KB: at 2 x 10 Mbit/s it would take 168 ms
    plan = pace_offsets(sizes, bitrate_bps=10e6, frame_interval_ns=FRAME_60, budget=0.5)
    assert plan.offsets_ns[0] == 0
    assert plan.offsets_ns[-1] <= FRAME_60 * 0.5
    assert plan.offsets_ns[-1] > FRAME_60 * 0.45  # and uses it rather than bursting


def test_slots_group_datagrams_within_a_granule():
    groups = slots([0, 0, 300, 900, 1000, 2500, 2600], granularity_ns=1000)
    assert groups == [(0, 0, 4), (1000, 4, 5), (2500, 5, 7)]
    assert slots([]) == []


def test_an_average_frame_is_never_paced():
    batches = []
    sender = PacedSender(burst_bytes=1400)
    # 20 Mbit/s at 60 fps: an average frame is 41.7 KB, about 30 datagrams.
    sender.send([b"x" * 1400] * 29, batches.append, bitrate_bps=20e6,
                frame_interval_ns=FRAME_60)
    assert len(batches) == 1 and sender.frames_paced == 0
    sender.send([b"x" * 1400] * 120, batches.append, bitrate_bps=20e6,
                frame_interval_ns=FRAME_60)
    assert len(batches) > 2 and sender.frames_paced == 1


def test_the_sender_sleeps_through_the_schedule_in_order():
    now = [0]
    sleeps, batches = [], []

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += int(seconds * 1e9)

    sender = PacedSender(burst_bytes=1400, granularity_ns=1_000_000,
                         clock=lambda: now[0], sleep=sleep)
    payloads = [bytes([i]) * 1400 for i in range(10)]
    sender.send(payloads, lambda batch: batches.append((now[0], list(batch))),
                bitrate_bps=1.4e6, frame_interval_ns=FRAME_60)
    assert [p for _, batch in batches for p in batch] == payloads
    assert batches[0][0] == 0 and payloads[0] in batches[0][1]
    times = [t for t, _ in batches]
    assert times == sorted(times)
    # Two average frames at 1.4 Mbit/s (5.8 KB) leave at once; the rest at
    # 2.8 Mbit/s would take 23 ms, so the budget (half of 16.7 ms) sets the pace.
    assert 6_000_000 <= times[-1] <= FRAME_60 // 2
    assert all(s > 0 for s in sleeps)


def test_a_paced_frame_crosses_a_real_socket_spread_out():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(2)
        address = receiver.getsockname()
        payloads = [bytes([i]) * 1200 for i in range(40)]

        def send_batch(batch):
            for payload in batch:
                sender_sock.sendto(payload, address)

        sender = PacedSender(burst_bytes=2400)
        # 48 KB at 5 Mbit/s is almost five average frames: a keyframe, paced.
        sender.send(payloads, send_batch, bitrate_bps=5e6, frame_interval_ns=FRAME_60)
        arrivals = []
        for _ in payloads:
            data = receiver.recv(2048)
            arrivals.append((time.monotonic_ns(), data))
        assert [d for _, d in arrivals] == payloads
        assert sender.frames_paced == 1
    finally:
        receiver.close()
        sender_sock.close()
