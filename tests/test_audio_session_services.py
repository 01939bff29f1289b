"""The two sound services on their own: the real `test` and `pulse` capture
backends, real Opus, real SDL playback through its disk driver; only the
session loop around them is left out (test_audio_session.py has it)."""

from __future__ import annotations

import gc
import sys
import threading
import time
import weakref

import numpy as np
import pytest
from test_audio_playback import disk_audio  # noqa: F401 - a fixture

from rootstream.audio.capture import open_audio_capture
from rootstream.audio.client_service import (
    HALF_MS_NS,
    START_BACKLOG,
    ClientAudio,
    PatientSync,
    host_capture_ns,
)
from rootstream.audio.host_service import HostAudio
from rootstream.audio.opus import OpusEncoder
from rootstream.audio.sender import AudioSender
from rootstream.errors import AudioError, NetworkError
from rootstream.protocol import Capability, Config, Header, PacketType
from rootstream.protocol.audio import AudioPayload
from rootstream.session import SessionInfo

MS = 1_000_000
NO_SERVER = "unix:/nonexistent/rootstream/pulse/native"


def session(config_caps: int = 0, peer_caps: int = Capability.AUDIO) -> SessionInfo:
    config = Config(width=640, height=360, fps=30, capabilities=config_caps)
    return SessionInfo(("127.0.0.1", 1), 7, "peer", config, peer_caps)


def audio_header() -> Header:
    return Header(PacketType.AUDIO, 0, 0, 0, 0)


# -- the host ---------------------------------------------------------------------


class Collector:
    def __init__(self):
        self.payloads: list[tuple[int, AudioPayload]] = []
        self.lock = threading.Lock()

    def __call__(self, ptype, payload):
        assert ptype == PacketType.AUDIO
        with self.lock:
            self.payloads.append((time.monotonic_ns(), AudioPayload.parse(payload)))


def test_host_sends_one_5ms_opus_frame_per_datagram_while_the_session_runs():
    lines: list[str] = []
    service = HostAudio("test", log=lines.append)
    assert service.available and service.backend == "test"
    send = Collector()
    service.session_started(session(), send)
    time.sleep(0.5)
    service.session_ended("bye")
    count = len(send.payloads)
    time.sleep(0.05)
    assert len(send.payloads) == count  # nothing after the session
    assert 60 <= count <= 110  # 200 a second
    payloads = [p for _, p in send.payloads]
    assert {p.samples for p in payloads} == {240}
    assert [p.position for p in payloads] == [i * 240 for i in range(count)]
    stamps = np.diff([p.captured_ns for p in payloads])
    assert np.all(stamps == 5 * MS)  # the test source's clock is exact
    assert not payloads[0].redundant and all(p.redundant for p in payloads[1:])
    assert all(len(AudioPayload.pack(p)) <= 1384 - 24 for p in payloads)  # fits sealed
    # Sent as soon as captured: a frame leaves within a few ms of its last sample.
    ages = [(sent - p.captured_ns) / MS for sent, p in send.payloads]
    assert np.median(ages) < 5 + 2.5 + 5  # frame + encoder lookahead + slack
    assert any("audio test signal starts at monotonic" in line for line in lines)
    assert service.counters["audio_frames"] == count


def test_host_sends_nothing_to_a_client_that_did_not_ask():
    service = HostAudio("test", log=lambda line: None)
    send = Collector()
    service.session_started(session(peer_caps=0), send)
    time.sleep(0.1)
    service.session_ended("bye")
    assert send.payloads == [] and service.counters["audio_declined"] == 1


def test_auto_without_a_sound_server_is_no_sound_and_one_line(monkeypatch):
    monkeypatch.setenv("PULSE_SERVER", NO_SERVER)
    lines: list[str] = []
    service = HostAudio("auto", log=lines.append)
    assert not service.available
    assert len(lines) == 1 and lines[0].startswith("rootstream host: sound off: ")
    assert "no audio capture backend could be opened" in lines[0]
    assert "pulse: cannot connect to the PulseAudio server" in lines[0]
    send = Collector()
    service.session_started(session(), send)
    service.session_ended("bye")
    assert send.payloads == []


def test_a_named_backend_that_cannot_open_is_an_error(monkeypatch):
    monkeypatch.setenv("PULSE_SERVER", NO_SERVER)
    with pytest.raises(AudioError, match="cannot connect to the PulseAudio server"):
        HostAudio("pulse", log=lambda line: None)
    for name in ("none", "alsa"):
        with pytest.raises(AudioError) as info:
            HostAudio(name)
        assert "auto, pulse, test, none" in info.value.hint


def test_a_failing_send_stops_the_sound_with_one_line_not_the_host():
    lines: list[str] = []
    service = HostAudio("test", log=lines.append)

    def send(ptype, payload):
        raise NetworkError("cannot send to 127.0.0.1:1: gone")
    service.session_started(session(), send)
    # The sender's first send fails within 10 ms; a loaded machine may take longer
    # to get there, so wait for it rather than for a fixed time.
    deadline = time.monotonic() + 5
    while not service.counters["audio_errors"] and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # time for a second error line, were it (wrongly) written
    service.session_ended("timeout")
    assert service.counters["audio_errors"] == 1
    assert sum("sound stopped: cannot send" in line for line in lines) == 1


# -- the client -------------------------------------------------------------------


def test_client_opens_no_device_when_the_host_sends_no_sound(disk_audio):  # noqa: F811
    service = ClientAudio(log=lambda line: None)
    service.session_started(session(config_caps=0), lambda *a: None)
    assert not service.wait_open(2) and service.playback is None
    assert service.handle(audio_header(), memoryview(b"\x00" * 30)) is True
    assert service.counters["audio_dropped"] == 1
    assert service.handle(Header(PacketType.INPUT, 0, 0, 0, 0), memoryview(b"")) is False


def test_client_plays_host_sound_and_feeds_lip_sync(disk_audio):  # noqa: F811
    lines: list[str] = []
    service = ClientAudio(log=lines.append)
    service.session_started(session(config_caps=Capability.AUDIO), lambda *a: None)
    assert service.wait_open(5), lines
    assert lines[-1] == "rootstream: sound through sdl (disk)"
    playback = service.playback
    sender = AudioSender(OpusEncoder(frame_ms=5))
    capture = open_audio_capture("test", chunk_samples=240)
    for _ in range(40):
        for payload in sender.push(capture.read()):
            assert service.handle(audio_header(), memoryview(payload))
    service.handle(audio_header(), memoryview(b"\x01" * 25))  # malformed
    assert service.counters["audio_dropped"] == 1
    assert playback.jitter.stats.received == 40

    class Frame:
        capture_ms = (capture.start_ns // MS) & 0xFFFFFFFF
    service.frame_presented(Frame(), capture.start_ns + 30 * MS)
    assert list(playback.sync._video) == [30 * MS - HALF_MS_NS + capture.start_ns % MS]
    service.tick(time.monotonic_ns())
    assert service.counters["audio_frames"] == 40
    service.session_ended("bye")
    assert service.playback is None


def test_client_without_a_device_keeps_the_picture_and_says_why_once(monkeypatch):
    monkeypatch.setenv("SDL_AUDIODRIVER", "no-such-driver")
    lines: list[str] = []
    service = ClientAudio(log=lines.append)
    for _ in range(2):  # a reconnect: the same reason is not said twice
        service.session_started(session(config_caps=Capability.AUDIO), lambda *a: None)
        assert not service.wait_open(5)
        service.session_ended("reconnecting")
    assert len(lines) == 1 and lines[0].startswith("rootstream: sound off: ")
    assert service.handle(audio_header(), memoryview(b"")) is True


def test_client_without_sdl_says_so_instead_of_crashing():
    lines: list[str] = []

    def opener(name, **options):
        raise OSError("could not find any library for SDL2")
    service = ClientAudio(log=lines.append, opener=opener)
    service.session_started(session(config_caps=Capability.AUDIO), lambda *a: None)
    assert not service.wait_open(5)
    assert lines == ["rootstream: sound off: SDL2 could not be loaded; could not find any "
                     "library for SDL2 (pip install pysdl2 pysdl2-dll)"]


def test_an_open_that_finishes_after_the_session_ended_is_closed(disk_audio):  # noqa: F811
    gate = threading.Event()
    opened = []

    class Playback:
        def __init__(self, **_):
            gate.wait(5)
            opened.append(self)
            self.closed = False

        def close(self):
            self.closed = True
    service = ClientAudio(log=lambda line: None, opener=lambda name, **o: Playback(**o))
    service.session_started(session(config_caps=Capability.AUDIO), lambda *a: None)
    service.session_ended("bye")
    gate.set()
    service.wait_open(5)
    assert service.playback is None and opened[0].closed


def test_switch_interval_is_set_while_sound_plays_and_put_back(disk_audio):  # noqa: F811
    before = sys.getswitchinterval()
    service = ClientAudio(log=lambda line: None, switch_interval_s=0.001)
    service.session_started(session(config_caps=Capability.AUDIO), lambda *a: None)
    assert service.wait_open(5)
    assert sys.getswitchinterval() == pytest.approx(min(before, 0.001))
    service.session_ended("bye")
    assert sys.getswitchinterval() == before


# -- pieces -----------------------------------------------------------------------


@pytest.mark.parametrize("reference_ms, capture_ms, expected_ms", [
    (1_000, 990, 990),
    (1_000, 1_020, 1_020),
    # The 32-bit millisecond stamp wrapped between the two.
    ((1 << 32) + 5, (1 << 32) - 3 & 0xFFFFFFFF, (1 << 32) - 3),
    ((1 << 32) - 3, 5, (1 << 32) + 5),
    ((7 << 32) + 100, 90, (7 << 32) + 90),
])
def test_a_32_bit_millisecond_stamp_is_placed_near_the_sound_clock(
        reference_ms, capture_ms, expected_ms):
    reference_ns = reference_ms * MS + 123_456
    assert host_capture_ns(capture_ms, reference_ns) == expected_ms * MS + HALF_MS_NS


def test_patient_sync_corrects_once_per_window():
    sync = PatientSync(window=5)
    for i in range(5):
        sync.video_presented(i * 10 * MS, i * 10 * MS + 80 * MS)
    asked = []
    for i in range(12):
        # The buffer applies the extra delay at once: the sound's latency follows it.
        extra = asked[-1] if asked else 0
        sync.audio_played(i * 5 * MS, i * 5 * MS + 30 * MS + extra)
        asked.append(sync.extra_delay_ns(extra))
    # Nothing until the window is full; one step of exactly the offset; then
    # a window of waiting, by which time the sound is where the picture is.
    assert asked[:4] == [0] * 4
    assert asked[4] == 50 * MS
    assert set(asked[5:]) == {50 * MS}


def test_patient_sync_takes_lateness_over_target_as_real():
    sync = PatientSync(window=3)
    for _ in range(3):
        sync.video_presented(0, 40 * MS)
        # 60 ms now, 15 ms over the target: a device that drags, not a
        # correction on its way, so the sound is 20 ms late, not 5.
        sync.audio_played(0, 60 * MS, settling_ns=15 * MS)
    assert sync.offset_ns == 20 * MS
    sync = PatientSync(window=3)
    for _ in range(3):
        sync.video_presented(0, 40 * MS)
        sync.audio_played(0, 30 * MS, settling_ns=-10 * MS)  # short of target: settling
    assert sync.offset_ns == 0


def test_sound_before_the_device_opens_waits_bounded_and_is_played_in_order():
    gate = threading.Event()
    pushed = []

    class Playback:
        def __init__(self, **_):
            gate.wait(5)  # the device still opening while sound arrives

        def push(self, parsed, now_ns=None):
            pushed.append((parsed.position, now_ns))

        def close(self):
            pass
    service = ClientAudio(log=lambda line: None, opener=lambda name, **o: Playback(**o))
    service.session_started(session(config_caps=Capability.AUDIO), lambda *a: None)
    waiting = START_BACKLOG + 20
    for n in range(waiting):
        wire = AudioPayload(2, 240, n * 240, 1_000 + n, b"\xf4").pack()
        assert service.handle(audio_header(), memoryview(wire))
    gate.set()
    assert service.wait_open(5)
    # The newest START_BACKLOG, oldest first, with their arrival times; the
    # oldest 20 that did not fit are counted as dropped.
    assert [p for p, _ in pushed] == [n * 240 for n in range(20, waiting)]
    stamps = [t for _, t in pushed]
    assert stamps == sorted(stamps) and stamps[0] is not None
    assert service.counters["audio_dropped"] == 20
    wire = AudioPayload(2, 240, waiting * 240, 9_000, b"\xf4").pack()
    service.handle(audio_header(), memoryview(wire))  # once open, straight through
    assert pushed[-1][0] == waiting * 240 and service.counters["audio_dropped"] == 20
    service.close()


def test_a_closed_sessions_playback_is_freed_at_once_not_by_the_cycle_collector(disk_audio):  # noqa: F811
    # A client resuming after a host restart closes one playback and opens
    # another.  The old one (its 4096-fill timeline, jitter buffer, Opus
    # decoder) used to live on in a reference cycle through its SDL callback
    # until a full collection, rare in a long-running process: +435 kB per
    # restart in the restart soak (docs/SOAK.md).
    service = ClientAudio(log=lambda line: None)
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            service.session_started(session(config_caps=Capability.AUDIO), lambda *a: None)
            assert service.wait_open(5)
            playback = weakref.ref(service.playback)
            service.session_ended("reconnecting")
            assert playback() is None, gc.get_referrers(playback())
    finally:
        gc.enable()
