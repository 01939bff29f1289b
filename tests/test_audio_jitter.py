"""The jitter buffer, driven datagram by datagram with an injected clock.

A real Opus stream of the test signal (sweep + timing marks) or a steady
tone is encoded once; each test replays it through a simulated link (delay,
reordering, loss, bursts, clock drift) into a real JitterBuffer with a real
decoder, reading 5 ms at a time as a sound device would.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rootstream.audio.capture import open_audio_capture
from rootstream.audio.jitter import JitterBuffer
from rootstream.audio.opus import OpusDecoder
from rootstream.audio.sender import AudioSender
from rootstream.audio.stretch import StretchFifo
from rootstream.audio.tone import find_marks
from rootstream.protocol.audio import AudioPayload
from rootstream.testing.audio_analysis import longest_quiet_ms

FRAME_NS = 10_000_000
T0 = 1_000_000_000_000


def _stream(seconds: float, *, redundancy: bool = True, **signal) -> list[AudioPayload]:
    capture = open_audio_capture("test", realtime=False, clock=lambda: T0, **signal)
    sender = AudioSender(redundancy=redundancy)
    return [AudioPayload.parse(p) for _ in range(int(seconds * 100))
            for p in sender.push(capture.read())]


@pytest.fixture(scope="module")
def marks_stream():
    return _stream(20)


@pytest.fixture(scope="module")
def plain_stream():
    return _stream(6, redundancy=False)


@pytest.fixture(scope="module")
def tone_stream():
    # A steady 1 kHz tone: anything but 1 kHz in the output is a glitch.
    return _stream(20, sweep_hz=(1000.0, 1000.0), mark_level=0.0)


@dataclasses.dataclass
class Run:
    jitter: JitterBuffer
    pcm: np.ndarray
    reads: np.ndarray  # rows: client time, delay, target, ratio (NaN before playout)

    def after(self, seconds: float) -> np.ndarray:
        start = self.reads[0, 0] + seconds * 1e9
        return self.reads[self.reads[:, 0] >= start]


def replay(stream, *, seconds=None, delay_ms=lambda i: 1.0, drop=lambda i: False,
           drift=0.0, read_samples=240, jitter=None, on_read=None) -> Run:
    """Play ``stream`` through a link: packet i leaves when its frame is complete
    (host clock), arrives ``delay_ms(i)`` later on a client clock running
    ``1 + drift`` times as fast, unless ``drop(i)``.  ``on_read(jitter, now)``
    runs after every read, as a playback device's callback would."""
    frames = stream if seconds is None else stream[:int(seconds * 100)]
    arrivals = []
    for i, payload in enumerate(frames):
        if drop(i):
            continue
        sent = payload.captured_ns + FRAME_NS + 500_000
        arrival = T0 + (sent - T0) * (1 + drift) + delay_ms(i) * 1e6
        arrivals.append((int(arrival), i, payload))
    arrivals.sort()
    jitter = jitter or JitterBuffer()
    step = read_samples * 1e9 / 48000
    now, k, out, reads = float(arrivals[0][0]), 0, [], []
    end = arrivals[-1][0] + 1  # push every datagram; draining the tail would be an underrun
    while now < end:
        while k < len(arrivals) and arrivals[k][0] <= now:
            jitter.push(arrivals[k][2], arrivals[k][0])
            k += 1
        out.append(jitter.read(read_samples, int(now)))
        if on_read is not None:
            on_read(jitter, int(now))
        reads.append((now, jitter.delay_ns if jitter.delay_ns is not None else np.nan,
                      jitter.target_delay_ns or np.nan, jitter.ratio))
        now += step
    return Run(jitter, np.concatenate(out), np.array(reads, dtype=np.float64))


def mark_spacing(pcm: np.ndarray) -> np.ndarray:
    return np.diff(find_marks(pcm))


def test_steady_link_plays_everything_once_in_order(marks_stream):
    run = replay(marks_stream, seconds=5)
    stats = run.jitter.stats
    assert stats.received == 500 and stats.decoded >= 495
    assert (stats.lost, stats.underruns, stats.late, stats.duplicates) == (0, 0, 0, 0)
    assert stats.concealed_samples == 0
    spacing = mark_spacing(run.pcm)
    assert len(spacing) >= 45
    assert np.abs(spacing - 4800).max() < 10  # no sample lost or repeated between marks
    settled = run.after(1)
    # On a clean link the buffer holds one read span, the margin and a little spread.
    assert np.nanmax(settled[:, 2] - settled[:, 2].min()) < 2e6
    assert np.nanmax(np.abs(settled[:, 1] - settled[:, 2])) < 2e6


def test_reordered_datagrams_are_played_in_order(marks_stream):
    # Every 7th datagram is held 15 ms, so it arrives after the next one.
    run = replay(marks_stream, seconds=5, delay_ms=lambda i: 16.0 if i % 7 == 3 else 1.0)
    stats = run.jitter.stats
    # A held datagram's frame usually comes first as the next one's redundant copy.
    assert stats.received + stats.recovered == 500
    assert stats.duplicates == stats.recovered and stats.late == 0
    assert stats.lost == 0
    # Only the very first reordering can catch the buffer before it learned the jitter.
    assert stats.underruns <= 1
    assert np.abs(mark_spacing(run.pcm[48000:]) - 4800).max() < 30
    assert np.nanmin(run.after(1)[:, 2]) - np.nanmin(run.reads[:5, 2]) > 10e6  # it grew


def test_five_percent_loss_is_repaired_by_redundancy(marks_stream):
    rng = random.Random(7)
    lost = {i for i in range(1000) if rng.random() < 0.05}
    run = replay(marks_stream, seconds=10, drop=lambda i: i in lost)
    stats = run.jitter.stats
    doubles = sum(1 for i in lost if i + 1 in lost)
    assert stats.recovered >= len(lost) - doubles - 1
    assert stats.lost <= doubles + 1  # only back-to-back losses need concealment
    assert longest_quiet_ms(run.pcm[4800:]) == 0
    assert len(find_marks(run.pcm)) >= 95


def test_loss_without_redundancy_is_concealed_without_gaps(plain_stream):
    lost = set(range(53, 600, 20))  # 5%, isolated, none on a mark
    run = replay(plain_stream, drop=lambda i: i in lost)
    stats = run.jitter.stats
    assert stats.recovered == 0
    assert stats.lost + stats.underruns >= len(lost) - 1
    assert stats.concealed_samples >= (len(lost) - 1) * 480
    assert longest_quiet_ms(run.pcm[4800:]) == 0  # PLC fills every hole
    assert len(find_marks(run.pcm)) >= 50


def test_a_burst_loss_longer_than_concealment_skips_ahead(marks_stream):
    run = replay(marks_stream, seconds=6, drop=lambda i: 200 <= i < 215)  # 150 ms gone
    stats = run.jitter.stats
    assert stats.resyncs == 1
    # Playback resumes at the right pace and the delay comes back to target.
    tail = run.pcm[-2 * 48000:]
    assert np.abs(mark_spacing(tail) - 4800).max() < 30
    assert abs(run.reads[-1, 1] - run.reads[-1, 2]) < 5e6


def test_a_stall_grows_the_target_and_calm_shrinks_it(marks_stream):
    # Datagrams 150..159 are stuck for up to 60 ms, then arrive together.
    def delay(i):
        return 1.0 + (160 - i) * 6.0 if 150 <= i < 160 else 1.0

    run = replay(marks_stream, seconds=12, delay_ms=delay)
    stats = run.jitter.stats
    assert stats.lost == 0 and stats.late == 0  # waited for them instead of dropping
    targets = run.reads[:, 2]
    before = np.nanmax(targets[:250])
    peak = np.nanmax(targets)
    assert peak - before > 40e6
    assert targets[-1] < peak - 20e6  # calm again: it gives the delay back, 3 ms a second
    assert abs(run.reads[-1, 1] - run.reads[-1, 2]) < 5e6
    assert longest_quiet_ms(run.pcm[4800:]) == 0


@pytest.mark.parametrize("drift", [0.001, -0.001])
def test_clock_drift_is_absorbed_without_glitches(tone_stream, drift):
    run = replay(tone_stream, drift=drift)
    stats = run.jitter.stats
    assert (stats.underruns, stats.lost, stats.cut_samples) == (0, 0, 0)
    settled = run.after(8)
    assert np.nanmax(np.abs(settled[:, 1] - settled[:, 2])) < 2.5e6
    # The client's clock runs 1+drift as fast: it must consume 1/(1+drift) as fast.
    assert np.median(settled[:, 3]) == pytest.approx(1 / (1 + drift), abs=2e-4)
    # Spectral purity: everything 30 Hz or more away from 1 kHz is noise or glitch.
    pcm = run.pcm[48000:].astype(np.float64).mean(axis=1)
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(pcm.size))) ** 2
    freqs = np.fft.rfftfreq(pcm.size, 1 / 48000)
    outside = spectrum[np.abs(freqs - 1000) > 30].sum() / spectrum.sum()
    assert 10 * np.log10(outside) < -40


def test_positions_wrap_at_32_bits(marks_stream):
    offset = 2**32 - 150 * 480  # wraps 1.5 s in
    shifted = [dataclasses.replace(p, position=(p.position + offset) & 0xFFFFFFFF)
               for p in marks_stream[:400]]
    run = replay(shifted)
    stats = run.jitter.stats
    assert (stats.resyncs, stats.lost, stats.late, stats.underruns) == (0, 0, 0, 0)
    assert np.abs(mark_spacing(run.pcm) - 4800).max() < 10


def test_a_restarted_host_stream_is_followed(marks_stream):
    jumped = [p if i < 200 else dataclasses.replace(p, position=(p.position + 48000 * 60))
              for i, p in enumerate(marks_stream[:500])]
    run = replay(jumped)
    assert run.jitter.stats.resyncs == 1
    assert np.abs(mark_spacing(run.pcm[-2 * 48000:]) - 4800).max() < 10


def test_duplicates_wrong_channels_and_late_frames_are_counted(marks_stream):
    jitter = JitterBuffer()
    first, second = marks_stream[0], marks_stream[1]
    jitter.push(first, T0)
    jitter.push(first, T0 + 1)
    assert jitter.stats.duplicates == 1
    jitter.push(dataclasses.replace(second, channels=1), T0 + 2)
    assert jitter.stats.rejected == 1
    for i in range(2, 6):
        jitter.push(marks_stream[i], T0 + i * FRAME_NS)
    now = T0 + 6 * FRAME_NS
    for _ in range(20):
        jitter.read(240, now)
        now += 5_000_000
    jitter.push(first, now)  # its slot was played long ago
    assert jitter.stats.late == 1


def test_reading_before_any_datagram_is_silence():
    jitter = JitterBuffer()
    pcm = jitter.read(240, T0)
    assert pcm.shape == (240, 2) and not pcm.any()
    assert jitter.last_read_captured_ns is None


payloads = st.builds(
    AudioPayload,
    channels=st.sampled_from([1, 2, 2, 2]),
    samples=st.sampled_from([120, 240, 480, 960, 5760]),
    position=st.integers(0, 2**32 - 1),
    captured_ns=st.integers(0, 2**63),
    primary=st.binary(min_size=1, max_size=300),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(payloads, st.integers(0, 50_000_000), st.integers(1, 2000)),
                max_size=30))
def test_hostile_payloads_never_break_playout(events):
    """Any sequence of well-formed but hostile payloads: reads still return sound."""
    jitter = JitterBuffer(decoder=OpusDecoder())
    now = T0
    for payload, gap, read in events:
        now += gap
        jitter.push(payload, now)
        pcm = jitter.read(read, now)
        assert pcm.shape == (read, 2) and pcm.dtype == np.int16
    assert jitter.buffered_frames <= jitter.max_frames


def test_stretch_fifo_at_ratio_one_is_a_bit_exact_copy():
    fifo = StretchFifo(2)
    pcm = np.random.default_rng(1).integers(-30000, 30000, (1000, 2)).astype(np.float32)
    fifo.append(pcm, np.arange(1000, dtype=np.int64) * 20833)
    out, stamp = fifo.read(600, 1.0)
    assert np.array_equal(out, pcm[:600]) and stamp == 0
    out, stamp = fifo.read(400, 1.0)
    assert np.array_equal(out, pcm[600:]) and stamp == 600 * 20833


def test_stretch_fifo_reads_join_seamlessly_at_any_ratio():
    t = np.arange(20000) / 48000
    sine = (10000 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[:, None]
    stamps = np.arange(20000, dtype=np.int64)
    whole, pieces = StretchFifo(1), StretchFifo(1)
    whole.append(sine, stamps)
    pieces.append(sine, stamps)
    ratio = 1.004
    one, _ = whole.read(19000, ratio)
    many = np.concatenate([pieces.read(n, ratio)[0] for n in [1000] * 19])
    assert np.allclose(one, many, atol=1e-2)
    # The result is the same sine, slightly sped up: compare with the exact curve.
    expected = 10000 * np.sin(2 * np.pi * 440 * np.arange(19000) * ratio / 48000)
    assert np.abs(one[:, 0] - expected).max() < 15  # cubic interpolation error, < -56 dB


def test_stretch_fifo_cuts_tonal_sound_in_phase():
    t = np.arange(4800) / 48000
    sine = (10000 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[:, None]
    fifo = StretchFifo(1)
    fifo.append(sine, np.arange(4800, dtype=np.int64))
    removed = fifo.cut(480, 96, 240)
    assert abs(removed - 480) <= 240
    period = 48000 / 440
    phase_error = (removed / period) % 1.0
    assert min(phase_error, 1 - phase_error) < 0.02  # a whole number of periods
    out, stamp = fifo.read(1000, 1.0)
    assert stamp == removed
    expected = 10000 * np.sin(2 * np.pi * 440 * (np.arange(1000) + removed) / 48000)
    assert np.abs(out[:, 0] - expected).max() < 0.04 * 10000  # no dip at the seam


def test_stretch_fifo_cut_crossfades_and_insert_keeps_stamps():
    fifo = StretchFifo(1)
    fifo.append(np.full((1000, 1), 100.0, np.float32), np.arange(1000, dtype=np.int64) * 10)
    assert fifo.cut(480, 96) == 480
    assert fifo.readable == 1000 - 480
    out, stamp = fifo.read(10, 1.0)
    assert stamp == 480 * 10 and np.allclose(out, 100.0)
    fifo.insert_silence(48)
    out, stamp = fifo.read(48, 1.0)
    assert not out.any()
    _, after = fifo.read(1, 1.0)
    assert after == 490 * 10  # the sample after the inserted silence kept its stamp
