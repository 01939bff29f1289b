"""The client's microphone reaches the host's "rootstream microphone", with real parts.

One private PulseAudio server (tests/test_audio_pulse.py's) plays both
machines' sound servers: a null sink "client_mic_feed" whose monitor is the
default source stands in for the client's microphone, and a 997 Hz tone is
played into it.  The client's microphone service captures it, encodes Opus
and sends AUDIO payloads (inside real ROOT datagrams) to the host's service,
which creates the virtual source, runs its jitter buffer and plays into it.
A recorder on "rootstream microphone" must hear the tone: frequency within
1 %, level within 2 dB of what was fed, no gaps; and when the session ends
the source is gone.
"""

from __future__ import annotations

import subprocess
import threading
import time

import numpy as np
import pytest
from test_audio_pulse import TONE_HZ, pulse_server  # noqa: F401 - the fixture

from rootstream.audio.mic_client import ClientMicrophone
from rootstream.audio.mic_host import HostMicrophone
from rootstream.audio.mic_source import SOURCE, source_names
from rootstream.audio.pulse_simple import PA_STREAM_PLAYBACK, PA_STREAM_RECORD, PulseStream
from rootstream.protocol import Capability, Config, PacketType, decode_datagram, encode_datagram
from rootstream.session import SessionInfo
from rootstream.testing.audio_analysis import dominant_hz, level_dbfs, longest_quiet_ms

pytestmark = pytest.mark.slow

FEED = "client_mic_feed"
AMPLITUDE = 8000  # about -15 dBFS


def pactl(server: str, *args: str) -> str:
    return subprocess.run(["pactl", "--server", server, *args], check=True, capture_output=True,
                          text=True, timeout=10).stdout


class Tone(threading.Thread):
    """A steady 997 Hz tone into the feed sink (the client's 'microphone')."""

    def __init__(self, server: str, seconds: float):
        super().__init__(daemon=True)
        self.stream = PulseStream(PA_STREAM_PLAYBACK, server=server, device=FEED,
                                  latency_ms=20, stream_name="test microphone tone")
        self.samples = int(seconds * 48000)

    def pcm(self, start: int, n: int) -> np.ndarray:
        t = (start + np.arange(n)) / 48000
        mono = np.rint(AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.int16)
        return np.repeat(mono[:, None], 2, axis=1)

    def run(self):
        try:
            for start in range(0, self.samples, 480):
                self.stream.write(self.pcm(start, 480).tobytes())
        finally:
            self.stream.close()


class Delays:
    """The host's stats sink: keeps its ``mic`` ring's samples (capture -> source)."""

    def __init__(self) -> None:
        self.ns: list[int] = []

    def record(self, stage: str, ns: int) -> None:
        if stage == "mic":
            self.ns.append(ns)


def record(server: str, seconds: float) -> np.ndarray:
    stream = PulseStream(PA_STREAM_RECORD, server=server, device=SOURCE, latency_ms=10,
                         stream_name="test recorder")
    buffer = bytearray(480 * 4)
    chunks = []
    try:
        for _ in range(int(seconds * 100)):
            stream.read_into(buffer)
            chunks.append(np.frombuffer(bytes(buffer), "<i2").reshape(-1, 2))
    finally:
        stream.close()
    return np.concatenate(chunks)


def test_a_tone_from_the_clients_microphone_plays_from_the_hosts_virtual_source(pulse_server):  # noqa: F811
    feed = pactl(pulse_server, "load-module", "module-null-sink", f"sink_name={FEED}",
                 "rate=48000", "channels=2").strip()
    pactl(pulse_server, "set-default-source", f"{FEED}.monitor")
    logs: list[str] = []
    delays = Delays()
    host = HostMicrophone(server=pulse_server, log=logs.append, stats=delays)
    client = ClientMicrophone(server=pulse_server, log=logs.append)
    sequence = iter(range(1 << 30))

    def send(ptype: PacketType, payload: bytes) -> None:
        header, body = decode_datagram(encode_datagram(ptype, next(sequence) & 0xFFFF, 0,
                                                       payload))
        assert host.handle(header, body)

    tone = Tone(pulse_server, seconds=8)
    try:
        host.session_started(SessionInfo(("c", 1), 1, "c", Config(), Capability.MICROPHONE),
                             lambda *a: None)
        assert SOURCE in source_names(pulse_server), logs
        assert "rootstream microphone" in pactl(pulse_server, "list", "sources")
        tone.start()
        client.session_started(SessionInfo(("h", 1), 1, "h",
                                           Config(capabilities=Capability.MICROPHONE)), send)
        # The jitter buffer starts with the delay of the first arrivals and steers
        # it down by playing up to 0.5 % fast: measured after it settled.
        time.sleep(4.0)
        settled = len(delays.ns)
        heard = record(pulse_server, 2.0)
        delays.ns = delays.ns[settled:]
        stats = host._jitter.stats if host._jitter else None
    finally:
        client.session_ended("bye")
        host.session_ended("bye")
        tone.join(10)
        pactl(pulse_server, "unload-module", feed)
    fed = level_dbfs(tone.pcm(0, 48000))
    print(f"\nmicrophone: {dominant_hz(heard):.2f} Hz, {level_dbfs(heard):.2f} dBFS "
          f"(fed {fed:.2f}), longest gap {longest_quiet_ms(heard[2400:]):.1f} ms, "
          f"{host.counters['mic_frames']} frames; {stats}; client capture -> host source "
          f"p50 {np.percentile(delays.ns, 50) / 1e6:.1f} ms, "
          f"p99 {np.percentile(delays.ns, 99) / 1e6:.1f} ms")
    assert dominant_hz(heard) == pytest.approx(TONE_HZ, rel=0.01)
    assert abs(level_dbfs(heard) - fed) <= 2.0
    # No gaps: the recorder's own first 50 ms (its stream starting) aside, silence
    # only where the host's jitter buffer ran dry because the client's capture
    # thread stalled on a loaded machine (then it re-buffers behind a fading
    # concealment), as the host sound's tests allow (test_audio_session.py).
    gap = longest_quiet_ms(heard[2400:])
    assert gap <= (0 if stats.underruns == 0 else 100), stats
    assert SOURCE not in source_names(pulse_server)  # gone with the session


def test_no_source_is_made_for_a_client_without_a_microphone(pulse_server):  # noqa: F811
    host = HostMicrophone(server=pulse_server, log=lambda line: None)
    host.session_started(SessionInfo(("c", 1), 1, "c", Config(), Capability.AUDIO),
                         lambda *a: None)
    assert SOURCE not in source_names(pulse_server)
    host.session_ended("bye")


def test_a_host_that_cannot_make_the_source_stops_offering_it(monkeypatch):
    monkeypatch.setenv("PULSE_SERVER", "unix:/nonexistent/rootstream-test")
    logs: list[str] = []
    host = HostMicrophone(log=logs.append)
    assert host.offers == Capability.MICROPHONE
    host.session_started(SessionInfo(("c", 1), 1, "c", Config(), Capability.MICROPHONE),
                         lambda *a: None)
    assert host.offers == 0 and "not played" in logs[0]
    header, body = decode_datagram(encode_datagram(PacketType.AUDIO, 1, 0, b"\x00"))
    assert host.handle(header, body)  # taken and counted, never a crash
    assert host.counters["mic_malformed"] == 1
