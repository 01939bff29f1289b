"""Capture factory, the `test` backend and its timing marks (no sound server needed)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from rootstream.audio.capture import open_audio_capture, probe_audio_captures
from rootstream.audio.tone import ToneSignal, find_marks
from rootstream.errors import AudioError

NO_SERVER = "unix:/nonexistent/rootstream-test/native"


def test_unknown_backend_lists_known_names():
    with pytest.raises(AudioError) as info:
        open_audio_capture("alsa")
    assert "unknown audio capture backend 'alsa'" in str(info.value)
    assert "auto, pulse, test" in info.value.hint


def test_auto_fails_with_every_backend_tried_and_why():
    with pytest.raises(AudioError) as info:
        open_audio_capture("auto", server=NO_SERVER)
    assert str(info.value) == "no audio capture backend could be opened"
    assert len(info.value.details) == 1 and info.value.details[0].startswith("pulse: ")
    assert "cannot connect to the PulseAudio server" in info.value.details[0]


def test_probe_reports_each_backend():
    results = probe_audio_captures({"pulse": {"server": NO_SERVER}})
    assert [name for name, _, _ in results] == ["pulse", "test"]
    (_, pulse_ok, pulse_reason), test_result = results
    assert pulse_ok is False and "cannot connect to the PulseAudio server" in pulse_reason
    assert test_result == ("test", True, "opened")


def test_test_backend_stamps_are_exact_and_paced():
    with open_audio_capture("test", chunk_samples=240) as capture:
        chunks = [capture.read() for _ in range(6)]
        finished = time.monotonic_ns()
    for i, chunk in enumerate(chunks):
        assert chunk.pcm.shape == (240, 2) and chunk.pcm.dtype == np.int16
        assert chunk.position == i * 240
        assert chunk.captured_ns == capture.start_ns + i * 5_000_000
    # A device cannot hand over sound before it has been captured.
    assert finished >= chunks[-1].captured_ns + 5_000_000


def test_test_signal_marks_sit_on_their_positions():
    signal = ToneSignal()
    for start in (0, 1234, 10**7):
        pcm = signal.render(start, 48000)
        onsets = find_marks(pcm) + start
        assert len(onsets) >= 9
        nearest = np.round(onsets / 4800) * 4800
        assert np.abs(onsets - nearest).max() < 2  # within 2 samples (42 µs)


def test_test_signal_is_deterministic_in_position():
    signal = ToneSignal()
    whole = signal.render(1000, 2000)
    parts = np.concatenate([signal.render(1000, 700), signal.render(1700, 1300)])
    assert np.array_equal(whole, parts)


def test_find_marks_ignores_a_plain_tone_and_cut_bursts():
    signal = ToneSignal()
    assert find_marks(np.zeros((1000, 2), np.int16)).size == 0
    # A burst cut by the end of the buffer cannot be timed, so it is not reported.
    assert find_marks(signal.render(4800 - 48000 // 1000 * 10, 480 + 100)).size == 0
