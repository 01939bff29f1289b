"""Recovery without keyframes: x264's intra refresh, its flag on the wire, and
the client resuming at a refresh cycle (never showing a damaged picture)."""

from __future__ import annotations

import threading
import time

from rootstream.client.video import REFRESH_FALLBACK_S, DecodeStage, KeyframeRule
from rootstream.decode import open_decoder
from rootstream.encode import open_encoder, pattern_nv12
from rootstream.encode.base import has_idr
from rootstream.protocol import IdrReason, VideoFragmenter
from rootstream.protocol.reassembly import Reassembler
from rootstream.stats import StatsCollector

W, H, CYCLE = 320, 192, 8


def _units(count: int, force_at: tuple[int, ...] = ()):
    with open_encoder("x264", width=W, height=H, fps=30, bitrate=1_000_000,
                      refresh=CYCLE) as encoder:
        assert encoder.refresh == CYCLE
        return [encoder.encode(pattern_nv12(W, H, i), force_keyframe=i in force_at)[0]
                for i in range(count)]


def test_x264_refreshes_instead_of_sending_keyframes():
    units = _units(3 * CYCLE + 2, force_at=(2 * CYCLE + 3,))
    assert [i for i, u in enumerate(units) if u.keyframe] == [0, 2 * CYCLE + 3]
    assert all(has_idr(u.data, "h264") == u.keyframe for u in units)
    # Each cycle starts with a recovery point (not an IDR); a forced IDR
    # restarts the cycle.
    starts = [i for i, u in enumerate(units) if u.refresh_start]
    assert starts[:2] == [CYCLE, 2 * CYCLE], starts
    assert not any(u.keyframe and u.refresh_start for u in units)


def test_the_refresh_flag_survives_fragmentation_and_reassembly():
    fragmenter = VideoFragmenter(fec_share=0.2, max_payload=600)
    reassembler = Reassembler()
    for refresh_start in (True, False):
        frame = fragmenter.cut(b"x" * 2000, keyframe=False, refresh_start=refresh_start)
        got = None
        for payload in frame.data:
            got = reassembler.push(payload, 0, time.monotonic_ns()) or got
        assert got is not None and got.refresh_start is refresh_start and not got.keyframe


def test_a_refreshing_client_waits_for_a_cycle_before_asking_for_a_keyframe():
    rule = KeyframeRule()
    rule.refresh = True
    now = time.monotonic()
    rule.want(IdrReason.FRAME_LOST, urgent=True)
    assert rule.due(now) is None
    assert rule.due(now + REFRESH_FALLBACK_S / 2) is None
    assert rule.due(now + REFRESH_FALLBACK_S + 0.01) == IdrReason.FRAME_LOST


def _assembled(units, reassembler, fragmenter, skip: set[int]):
    """The units as the client's receiver hands them over, ``skip`` lost on the way."""
    frames = []
    for index, unit in enumerate(units):
        frame = fragmenter.cut(unit.data, keyframe=unit.keyframe,
                               refresh_start=unit.refresh_start)
        if index in skip:
            continue
        for payload in frame.data:
            done = reassembler.push(payload, index, time.monotonic_ns())
            if done is not None:
                frames.append((index, done))
    return frames


def test_a_client_that_lost_a_reference_shows_nothing_until_the_refresh_completes():
    units = _units(4 * CYCLE)
    lost = CYCLE + 2  # inside the second cycle
    frames = _assembled(units, Reassembler(), VideoFragmenter(fec_share=0.0), {lost})
    stats = StatsCollector("client", ("decode",))
    stage = DecodeStage(stats)
    stage.keyframes.refresh = True
    stop = threading.Event()
    stage.start(open_decoder("software"), stop, lambda error: None)
    shown = []
    try:
        assert stage.ready.wait(5)
        for _, frame in frames:
            while not stage.offer(frame):
                time.sleep(0.01)
            deadline = time.monotonic() + 2
            while stage._queue.qsize() and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(0.01)
            while (decoded := stage.pictures.take(timeout=0)) is not None:
                shown.append(decoded.frame.capture_ms)
                assert not decoded.picture.is_corrupt
    finally:
        stop.set()
        stage.close()
    # Shown: the first cycle and the frame after it up to the loss; then
    # nothing until the cycle after the loss (starting at 2*CYCLE) completes.
    resumed = [i for i in shown if i > lost]
    assert shown[:lost] == list(range(lost)), shown
    assert resumed and resumed[0] >= 2 * CYCLE + CYCLE - 1, shown
    assert stats.totals.get("resumed_at_refresh") == 1, stats.totals
    assert stats.totals.get("corrupt_pictures", 0) == 0
