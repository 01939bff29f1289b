"""SDL playback for real, through SDL's disk driver (no sound card here)."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys

import numpy as np
import pytest

from rootstream.audio.alsa_quiet import silence_alsa
from rootstream.audio.capture import open_audio_capture
from rootstream.audio.playback import open_audio_playback, probe_audio_playbacks
from rootstream.audio.sender import AudioSender
from rootstream.audio.tone import find_marks
from rootstream.errors import AudioError
from rootstream.testing.audio_analysis import longest_quiet_ms


@pytest.fixture
def disk_audio(tmp_path, monkeypatch):
    """SDL writes what it plays to a file, paced roughly like a device."""
    path = tmp_path / "played.raw"
    monkeypatch.setenv("SDL_AUDIODRIVER", "disk")
    monkeypatch.setenv("SDL_DISKAUDIOFILE", str(path))
    return path


def read_played(path) -> np.ndarray:
    return np.fromfile(path, dtype="<i2").reshape(-1, 2)


def test_test_signal_plays_through_sdl_with_its_marks(disk_audio):
    with open_audio_playback("sdl", device_samples=480) as playback:
        assert playback.driver == "disk" and playback.device_samples == 480
        capture = open_audio_capture("test")  # after SDL is up: no backlog of old chunks
        sender = AudioSender()
        for _ in range(150):  # 1.5 s of real time
            for payload in sender.push(capture.read()):
                playback.push(payload)
    assert playback.callback_errors == []
    pcm = read_played(disk_audio)
    assert abs(pcm.shape[0] - playback.played_samples) <= playback.device_samples
    stats = playback.jitter.stats
    assert stats.received == 150 and stats.lost == 0
    start = int(np.flatnonzero(np.abs(pcm[:, 0]) > 100)[0])
    sound = pcm[start:]
    if stats.underruns == 0:  # a host thread starved by a loaded machine can run it dry
        assert longest_quiet_ms(sound) == 0, stats
    # The disk driver sleeps a buffer's length *after* each fill, so it plays
    # slower than real time: the buffer keeps up by cutting sound in phase
    # (and a cut may take a mark with it).  Exact mark timing is checked with
    # an injected clock in test_audio_jitter.py and test_audio_sync.py.
    assert len(find_marks(sound)) >= 5
    stretched = stats.cut_samples + stats.dropped_samples - stats.inserted_samples \
        - stats.expanded_samples - stats.concealed_samples
    in_buffer = 150 * 480 - stats.decoded * 480
    # Every decoded sample was played, cut, or is still buffered (ratio aside).
    played_from_stream = playback.played_samples + stretched + in_buffer
    assert played_from_stream == pytest.approx(150 * 480, rel=0.05, abs=3000)


def test_malformed_payloads_are_counted_and_dropped(disk_audio):
    with open_audio_playback() as playback:
        playback.push(b"\x00" * 5)
        playback.push(b"\xff" * 40)
        assert playback.malformed == 2
        assert playback.jitter.stats.received == 0


def test_playback_backends_are_probed_and_unknown_names_listed(disk_audio):
    assert probe_audio_playbacks() == [("sdl", True, "opened")]
    with pytest.raises(AudioError) as info:
        open_audio_playback("alsa")
    assert "unknown audio playback backend 'alsa'" in str(info.value)
    assert "sdl" in info.value.hint


def test_a_missing_sdl_driver_is_an_audio_error(monkeypatch):
    monkeypatch.setenv("SDL_AUDIODRIVER", "no-such-driver")
    with pytest.raises(AudioError) as info:
        open_audio_playback()
    assert info.value.details and info.value.details[0]
    assert probe_audio_playbacks()[0][1] is False


ALSA_ATTEMPT = """
from rootstream.audio.playback import open_audio_playback
from rootstream.errors import AudioError
try:
    open_audio_playback("sdl").close()
except AudioError as exc:
    print("refused:", exc)
"""


@pytest.mark.skipif(not ctypes.util.find_library("asound"), reason="no alsa-lib on this machine")
def test_a_failing_alsa_is_one_clear_error_not_alsa_libs_own_lines():
    """ALSA asked for a card that does not exist: alsa-lib would print its
    own "ALSA lib ..." lines on stderr; the user gets our error alone."""
    env = {**os.environ, "SDL_AUDIODRIVER": "alsa", "ALSA_CARD": "no-such-card-rootstream"}
    done = subprocess.run([sys.executable, "-c", ALSA_ATTEMPT], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "refused: no SDL audio output device could be opened" in done.stdout
    assert "ALSA lib" not in done.stderr


def test_silencing_alsa_is_idempotent():
    first = silence_alsa()
    assert silence_alsa() is first
