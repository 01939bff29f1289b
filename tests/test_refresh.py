"""Recovery without keyframes: x264's intra refresh, its flag on the wire, and
the client resuming at a refresh cycle (never showing a damaged picture)."""

from __future__ import annotations

import threading
import time

import numpy as np

from rootstream.capture.pattern import PatternCapture
from rootstream.client.video import DecodeStage, RefreshHold
from rootstream.convert import NV12Converter
from rootstream.decode import open_decoder
from rootstream.encode import open_encoder, pattern_nv12
from rootstream.encode.base import has_idr
from rootstream.host.room_policy import REFRESH_FALLBACK_S, RoomPolicy
from rootstream.host.viewers import Viewer
from rootstream.protocol import VideoFragmenter
from rootstream.protocol.reassembly import AssembledFrame, Reassembler
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


def test_a_refreshing_host_defers_a_keyframe_while_others_watch_and_not_forever():
    policy = RoomPolicy(0.2, apply_fec=lambda share: None, log=lambda line: None)
    viewer = Viewer(("127.0.0.1", 5000), 1, "tv", 0.0, 0.0)
    now = 100.0

    def asks(at: float, watching: int, refreshes: bool = True) -> bool:
        return policy.keyframe_worth_it(viewer, watching=watching, refreshes=refreshes, now=at)

    assert asks(now, watching=1)  # alone: a keyframe costs nobody else
    assert asks(now, watching=3, refreshes=False)  # no refresh: keyframes it is
    # With others watching, requests every 0.1 s wait for a sweep...
    start = now + 5
    waits = [asks(start + k * 0.1, watching=3) for k in range(int(REFRESH_FALLBACK_S * 10))]
    assert not any(waits) and viewer.counts["keyframe_deferred"] == len(waits)
    # ...until the viewer has asked for REFRESH_FALLBACK_S: a sweep was lost too.
    assert asks(start + REFRESH_FALLBACK_S + 0.05, watching=3)


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
    units = _units(6 * CYCLE)
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
    # nothing before two cycles from the recovery point after the loss (at
    # 2*CYCLE: RefreshHold), and from there on every frame.
    resumed = [i for i in shown if i > lost]
    assert shown[:lost] == list(range(lost)), shown
    assert resumed == list(range(4 * CYCLE - 1, 6 * CYCLE)), shown
    assert stats.totals.get("resumed_at_refresh") == 1, stats.totals
    assert stats.totals.get("corrupt_pictures", 0) == 0


def test_after_a_resume_at_any_cycle_only_pictures_equal_to_a_clean_decode_are_shown():
    """x264's wave sometimes ends a cycle late (every eighth cycle at 6 frames
    a cycle, 720p test pattern): FFmpeg's recovery count alone would show
    stale blocks there; RefreshHold must not."""
    width, height, cycle = 1280, 720, 6
    capture = PatternCapture(width=width, height=height, fps=60)
    converter = NV12Converter(width, height, capture.pixel_format, pool_size=4)
    with open_encoder("x264", width=width, height=height, fps=60, bitrate=10_000_000,
                      refresh=cycle) as encoder:
        units = [encoder.encode(converter.convert(capture.grab(timeout=1, force=True)))[0]
                 for _ in range(17 * cycle)]
    clean = open_decoder("software")
    reference = [clean.decode(u.data)[0].to_ndarray() for u in units]
    starts = [i for i, u in enumerate(units) if u.refresh_start]
    shown_from = []
    for start in starts[:-2]:
        decoder = open_decoder("software")
        decoder.decode(units[0].data)  # a client with state, then a loss
        decoder.flush()
        hold = RefreshHold()
        hold.resume(start)
        for index in range(start, len(units)):
            frame = AssembledFrame(index, bytearray(), False, 0, 0, 0, 0, False, 0,
                                   units[index].refresh_start)
            visible = hold.allows(frame)
            for picture in decoder.decode(units[index].data):
                if visible:
                    assert np.array_equal(picture.to_ndarray(), reference[index]), \
                        f"resumed at {start}: picture {index} is not the clean one"
                    shown_from.append(index - start)
            if index - start > 3 * cycle:
                break
    assert set(shown_from) >= {2 * cycle - 1}  # shown from two cycles on, every time
