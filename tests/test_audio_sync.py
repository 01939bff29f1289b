"""Lip sync: the sound is delayed to meet the picture, never the other way round."""

from __future__ import annotations

import numpy as np
import pytest
from test_audio_jitter import T0, _stream, replay

from rootstream.audio.capture import open_audio_capture
from rootstream.audio.sync import AudioSync
from rootstream.audio.tone import find_marks

MS = 1_000_000
CLOCK_OFFSET = 123_456_789_000  # client clock minus host clock: arbitrary, must cancel


def feed(sync: AudioSync, audio_ms: float, video_ms: float, n: int = 40) -> None:
    for i in range(n):
        host = T0 + i * 10 * MS
        sync.video_presented(host, host + CLOCK_OFFSET + int(video_ms * MS))
        sync.audio_played(host, host + CLOCK_OFFSET + int(audio_ms * MS))


def test_offset_is_audio_latency_minus_video_latency_whatever_the_clocks():
    sync = AudioSync()
    assert sync.offset_ns is None and not sync.in_sync
    feed(sync, audio_ms=30, video_ms=80)
    assert sync.offset_ns == pytest.approx(-50 * MS, abs=1000)
    assert not sync.in_sync


def test_early_sound_asks_for_exactly_the_missing_delay():
    sync = AudioSync()
    feed(sync, audio_ms=30, video_ms=80)
    assert sync.extra_delay_ns(0) == pytest.approx(50 * MS, abs=1000)
    assert sync.extra_delay_ns(20 * MS) == pytest.approx(70 * MS, abs=1000)


def test_small_offsets_are_left_alone():
    sync = AudioSync(deadband_ms=4)
    feed(sync, audio_ms=50, video_ms=47)
    assert sync.in_sync
    assert sync.extra_delay_ns(15 * MS) == 15 * MS


def test_late_sound_gives_back_extra_delay_but_never_goes_below_zero():
    sync = AudioSync()
    feed(sync, audio_ms=90, video_ms=60)
    assert sync.extra_delay_ns(50 * MS) == pytest.approx(20 * MS, abs=1000)
    assert sync.extra_delay_ns(10 * MS) == 0  # the rest is reported, video is not delayed
    assert sync.offset_ns == pytest.approx(30 * MS, abs=1000) and not sync.in_sync


def test_settling_buffer_is_not_asked_twice():
    sync = AudioSync()
    for i in range(40):
        host = T0 + i * 10 * MS
        sync.video_presented(host, host + 80 * MS)
        # Heard 40 ms after capture now, but the buffer is still 30 ms above its target.
        sync.audio_played(host, host + 40 * MS, settling_ns=-30 * MS)
    # It is heading for 70 ms: only 10 ms more is needed.
    assert sync.extra_delay_ns(0) == pytest.approx(10 * MS, abs=1000)


@pytest.mark.parametrize("video_ms", [45, 70, 120])
def test_closed_loop_puts_marks_within_20_ms_of_the_picture(video_ms):
    """Jitter buffer + AudioSync on a simulated link; the truth comes from the
    timing marks found in the played sound, not from any stamp."""
    capture = open_audio_capture("test", realtime=False, clock=lambda: T0)
    stream = _stream(15)
    sync = AudioSync()
    device_ns = 5 * MS
    heard: list[tuple[int, int]] = []  # (first output sample index, time it is heard)
    played = [0]

    def on_read(jitter, now):
        # The picture of the same instant is shown video_ms after capture (client clock).
        sync.video_presented(now - 20 * MS, now - 20 * MS + video_ms * MS)
        if jitter.last_read_captured_ns is not None:
            settling = jitter.delay_ns - jitter.target_delay_ns
            sync.audio_played(jitter.last_read_captured_ns, now + device_ns, settling)
        jitter.set_extra_delay(sync.extra_delay_ns(jitter.extra_delay_ns))
        heard.append((played[0], now + device_ns))
        played[0] += 240

    run = replay(stream, on_read=on_read)
    starts = np.array(heard, dtype=np.float64)
    latencies = []
    for onset in find_marks(run.pcm):
        row = int(np.searchsorted(starts[:, 0], onset, side="right")) - 1
        heard_at = starts[row, 1] + (onset - starts[row, 0]) * 1e9 / 48000
        mark = round((heard_at - video_ms * MS - capture.start_ns) / 100e6)
        latencies.append((heard_at - capture.captured_ns_at(mark * 4800)) / MS)
    latencies = np.array(latencies)
    settled = latencies[len(latencies) * 2 // 3:]  # the last third of 15 s
    assert len(settled) >= 40
    assert np.abs(settled - video_ms).max() <= 20
    if video_ms >= 45:
        assert sync.in_sync
