"""Sound through the real session loops.

A `rootstream host` process (test pattern picture, encrypted session as by
default) captures sound and streams it; a Client in this process plays it
through SDL's disk driver (no sound card here), which writes what it plays
to a file the test reads back.

- Pulse: a private PulseAudio server with a null sink, a 997 Hz tone with
  timing marks played into it, the host capturing the sink's monitor
  (``--audio pulse``), 5% of the datagrams to the client lost in a
  LossyRelay: the tone's frequency, level and continuity are checked.
- Lip sync: the host's ``test`` sound (a sweep with a mark every 100 ms,
  mark m captured at the host clock's ``start + m * 100 ms``, start logged
  by the host) beside a 1280x720 picture whose encode makes the picture
  slower than the sound.  Each mark found in the played file is timed
  (when its fill went to the device plus the device's buffer) and compared
  with the video frame captured at the same moment: that offset must be
  within ±20 ms, the client's own lip-sync figure must agree with it, and
  the picture's latency read from the header stamp must agree with the one
  read from the pattern's pixels.
- Without a sound server, `--audio auto` streams the picture alone and says
  why; `connect --no-audio` makes the host send no sound.

The pulse test needs the Debian packages pulseaudio and pulseaudio-utils
and is skipped with the reason when the server cannot start.
"""

from __future__ import annotations

import os
import re
import threading

import numpy as np
import pytest
from session_helpers import HostProcess
from test_audio_playback import disk_audio  # noqa: F401 - a fixture
from test_audio_pulse import TONE_HZ, SinkPlayer, pulse_server  # noqa: F401 - a fixture

from rootstream.audio.chunk import RATE
from rootstream.audio.client_service import FillLog
from rootstream.audio.tone import find_marks
from rootstream.client import Client, ClientOptions
from rootstream.host import Host, HostOptions
from rootstream.protocol import PacketType
from rootstream.session import ClientService
from rootstream.testing.audio_analysis import dominant_hz, level_dbfs, longest_quiet_ms
from rootstream.testing.impair import Impairment, ImpairmentModel, LossyRelay

pytestmark = pytest.mark.slow

MARK_PERIOD_NS = 100_000_000


class Shown(ClientService):
    """Records every shown frame's host capture time and when it was shown,
    keeps the audio service's playback (the client closes it at the end) and
    logs, per device fill, when its sound is heard and its stamp-based latency."""

    def __init__(self):
        self.frames: list[tuple[int, int]] = []  # (capture_ms, presented_ns)
        self.fills = FillLog()
        self.audio = None
        self.playback = None

    def frame_presented(self, frame, presented_ns):
        self.frames.append((frame.capture_ms, presented_ns))
        if self.playback is None and self.audio is not None:
            self.playback = self.audio.playback
            if self.playback is not None:
                self.fills.attach(self.playback)


def run_client(address, seconds: float, **options):
    shown = Shown()
    logs: list[str] = []
    client = Client(ClientOptions(host=address, present="null", seconds=seconds,
                                  stats_interval=60, input=False, **options),
                    log=logs.append, services=[shown])
    shown.audio = client.audio
    result = client.run()
    return client, result, shown, logs


class TimedSinkPlayer(SinkPlayer):
    def longest_stall_ms(self) -> float:
        """The longest silence the sink played because this thread wrote late:
        after a stall every later sample plays that much later than planned."""
        planned = np.array([plays - end * 1e9 / RATE for end, plays in self.writes])
        steps = np.diff(planned) / 1e6
        return float(steps.max()) if steps.size else 0.0


def played(path) -> np.ndarray:
    return np.fromfile(path, dtype="<i2").reshape(-1, 2)


def test_pulse_tone_reaches_the_client_through_five_percent_loss(
        pulse_server, disk_audio, tmp_path, udp_port):  # noqa: F811 - the fixtures
    env = dict(os.environ, PULSE_SERVER=pulse_server)
    host = HostProcess(udp_port, "--source", "test", "--size", "640x360", "--fps", "30",
                       "--audio", "pulse", "--input", "none", "--sessions", "1",
                       env=env, log_dir=tmp_path)
    relay = LossyRelay(upstream=("127.0.0.1", udp_port), to_client=Impairment(loss=0.05),
                       to_host=Impairment(), seed=8)
    relay.start()
    player = None
    try:
        host.wait_for("listening on")
        assert "sound from pulse" in host.log()
        player = TimedSinkPlayer(pulse_server, seconds=6)
        player.start()
        client, result, shown, logs = run_client(relay.address, 4.5)
        host.wait_for("said bye")
    finally:
        if player is not None:
            player.join(10)
        relay.stop()
        host.stop()
    playback = shown.playback
    assert result.frames_presented > 0, logs
    assert playback is not None, logs
    assert playback.callback_errors == []
    assert player.error is None
    stats = playback.jitter.stats
    lost_on_the_way = client.transport.counters.lost.get(PacketType.AUDIO, 0)
    print(f"\n{stats}; AUDIO datagrams lost on the way: {lost_on_the_way}; "
          f"relay to client: {relay.counters['to_client']}")
    assert lost_on_the_way >= 5
    # Most losses are repaired from the next datagram's copy, the rest concealed.
    assert stats.recovered >= lost_on_the_way // 2
    pcm = played(disk_audio)
    loud = np.flatnonzero(np.abs(pcm[:, 0]) > 1000)
    assert loud.size, "nothing audible was played"
    sound = pcm[loud[0]:loud[-1]]
    assert sound.shape[0] > 2 * RATE
    # The disk driver plays about 1% slower than real time; the buffer keeps up
    # by playing up to 0.5% fast and cutting in phase, so the pitch is within 0.6%.
    assert dominant_hz(sound) == pytest.approx(TONE_HZ, rel=0.006)
    assert level_dbfs(sound) == pytest.approx(level_dbfs(player.signal.render(0, RATE)),
                                              abs=2.0)
    gap = longest_quiet_ms(sound)
    source_gap = player.longest_stall_ms()
    print(f"longest gap {gap} ms, underruns {stats.underruns}, the sink's own longest "
          f"silence {source_gap:.1f} ms")
    # No gap where datagrams were lost: a copy or concealment fills each one.
    # Silence only where the sink itself fell silent (the player starved on a
    # loaded machine), or where the buffer ran dry because the host's thread
    # stalled (then it re-buffers to its target behind a fading concealment).
    assert gap <= source_gap + 5 + (100 if stats.underruns else 0)


def heard_ns(playback, index: float) -> float:
    """When output sample ``index`` was heard: its fill went to the device,
    and the device's one buffer played out before it."""
    timeline = np.array(playback.timeline, dtype=np.float64)
    k = int(np.searchsorted(timeline[:, 0], index, side="right")) - 1
    first, filled = timeline[k]
    return filled + (index - first) * 1e9 / RATE + playback.device_latency_ns


class SlowPicture(ImpairmentModel):
    """Holds VIDEO datagrams back ``delay_ms`` (a picture slower than its sound,
    as a heavy encode would make it); everything else passes at once."""

    delay_ms = 200.0

    def process(self, datagram: bytes, now: int):
        if len(datagram) > 5 and datagram[5] == PacketType.VIDEO:
            self.counters.received += 1
            self.counters.forwarded += 1
            return [(now + int(self.delay_ms * 1e6), datagram)]
        return super().process(datagram, now)


def test_audio_marks_line_up_with_the_frames_captured_with_them(
        disk_audio, tmp_path, udp_port):  # noqa: F811 - the fixture
    host = HostProcess(udp_port, "--source", "test", "--size", "640x360", "--fps", "30",
                       "--audio", "test", "--input", "none", "--sessions", "1",
                       log_dir=tmp_path)
    relay = LossyRelay(upstream=("127.0.0.1", udp_port))
    relay.to_client = SlowPicture()
    relay.start()
    try:
        host.wait_for("listening on")
        client, result, shown, logs = run_client(relay.address, 6.0, same_clock=True)
        host.wait_for("said bye")
    finally:
        relay.stop()
        host.stop()
    playback = shown.playback
    assert playback is not None, logs
    start = int(re.search(r"audio test signal starts at monotonic (\d+) ns",
                          host.log()).group(1))
    frames = np.array(shown.frames, dtype=np.float64)
    capture_ns = frames[:, 0] * 1e6 + 0.5e6  # a millisecond stamp, truncated
    video_ns = frames[:, 1] - capture_ns
    # The header's capture stamp is the one in the pattern's pixels ("glass").
    glass = client.stats.window.rings["glass"].percentiles_ms((50,))["p50"]
    assert np.median(video_ns) / 1e6 == pytest.approx(glass, abs=1.5)
    settled = frames[len(frames) // 3, 1]  # lip sync has had two seconds to act

    pcm = played(disk_audio)
    offsets, latencies = [], []
    for onset in find_marks(pcm):
        heard = heard_ns(playback, onset)
        if heard < settled:
            continue
        # Which mark is it?  The one whose capture time makes the latency nearest
        # the stamp-based latency of its fill: the stamps only pick among marks
        # 100 ms apart; the latency itself comes from where the mark was heard.
        mark = round((heard - shown.fills.latency_ns(heard) - start) / MARK_PERIOD_NS)
        captured = start + mark * MARK_PERIOD_NS
        nearest = int(np.argmin(np.abs(capture_ns - captured)))
        if abs(capture_ns[nearest] - captured) > 1e9 / 30:
            continue  # no frame of that moment was shown
        latencies.append(heard - captured)
        offsets.append((heard - captured) - video_ns[nearest])
    offsets_ms, latencies_ms = np.array(offsets) / 1e6, np.array(latencies) / 1e6
    sync_ms = client.audio.offsets_ns[-1] / 1e6
    print(f"\n{len(offsets)} marks; sound latency p50 {np.median(latencies_ms):.1f} ms; "
          f"picture p50 {np.median(video_ns) / 1e6:.1f} ms (glass {glass:.1f}); "
          f"A/V offset per mark p50 {np.median(offsets_ms):.1f} ms, "
          f"min {offsets_ms.min():.1f}, max {offsets_ms.max():.1f}; client's own "
          f"figure {sync_ms:.1f} ms; extra delay {playback.jitter.extra_delay_ns / 1e6:.1f} ms; "
          f"{playback.jitter.stats}")
    assert len(offsets) >= 15
    offset = float(np.median(offsets_ms))
    # The client's own figure agrees with what the marks say.
    ticks = client.audio.offsets_ns
    assert offset == pytest.approx(np.median(ticks[len(ticks) // 3:]) / 1e6, abs=8)
    if playback.jitter.extra_delay_ns > 0:
        # The sound ran ahead of the picture: the buffer held it back to
        # within ±20 ms of the frames captured with it.
        assert abs(offset) <= 20
    else:
        # The sound itself took longer than the slowed picture (a machine so
        # loaded that the host's audio thread stalls for a hundred
        # milliseconds makes the jitter buffer wait that long): the picture
        # is never held back, so the sound is late, and the figure says so.
        assert offset > 20


def test_without_a_sound_server_the_host_streams_the_picture_alone(tmp_path, udp_port):
    env = dict(os.environ, PULSE_SERVER="unix:/nonexistent/pulse/native")
    host = HostProcess(udp_port, "--source", "test", "--size", "640x360", "--fps", "30",
                       "--input", "none", "--sessions", "1", env=env, log_dir=tmp_path)
    try:
        host.wait_for("listening on")
        client, result, shown, logs = run_client(("127.0.0.1", udp_port), 1.5)
        host.wait_for("said bye")
    finally:
        host.stop()
    log = host.log()
    assert log.count("sound off:") == 1
    assert "cannot connect to the PulseAudio server" in log
    assert result.frames_presented > 0
    assert shown.playback is None and client.audio.playback is None
    assert not any("sound through" in line for line in logs)


def test_no_audio_on_the_client_means_no_sound_is_sent(tmp_path, udp_port):
    host = HostProcess(udp_port, "--source", "test", "--size", "640x360", "--fps", "30",
                       "--audio", "test", "--input", "none", "--sessions", "1",
                       "--stats-interval", "0.5", log_dir=tmp_path)
    try:
        host.wait_for("listening on")
        client, result, _, _ = run_client(("127.0.0.1", udp_port), 1.5, audio=False)
        host.wait_for("said bye")
    finally:
        host.stop()
    assert client.audio is None
    assert result.frames_presented > 0
    assert client.transport.counters.received > 0
    assert PacketType.AUDIO not in client.transport.counters.lost
    assert "audio_frames=" not in host.log()
    assert client.stats.totals.get("dropped_unexpected", 0) == 0


def test_an_explicit_backend_that_cannot_open_stops_the_host(tmp_path, udp_port):
    env = dict(os.environ, PULSE_SERVER="unix:/nonexistent/pulse/native")
    host = HostProcess(udp_port, "--source", "test", "--audio", "pulse", env=env,
                       log_dir=tmp_path)
    try:
        host.proc.wait(30)
    finally:
        host.stop()
    assert host.proc.returncode != 0
    assert "cannot connect to the PulseAudio server" in host.log()
    assert "Traceback" not in host.log()


def test_the_audio_thread_runs_only_while_a_session_does(
        disk_audio, udp_port):  # noqa: F811 - the fixture
    host = Host(HostOptions(source="test", size=(640, 360), fps=30, bind="127.0.0.1",
                            port=udp_port, max_sessions=1, stats_interval=60, audio="test"),
                log=lambda line: None)
    serving = threading.Thread(target=host.serve)
    serving.start()
    try:
        assert host.audio.available and host.audio._thread is None
        Client(ClientOptions(host=("127.0.0.1", udp_port), present="null", seconds=1.0,
                             stats_interval=60, input=False, audio=True),
               log=lambda line: None).run()
        serving.join(10)
        sent = host.audio.counters["audio_frames"]
        threading.Event().wait(0.3)
        assert host.audio.counters["audio_frames"] == sent
    finally:
        host.close()
    assert host.audio._thread is None
    assert not any(t.name == "audio" for t in threading.enumerate())
    # The client plays into SDL's disk driver (a client without a device would
    # tell the host, which stops sending): 200 frames (5 ms each) a second,
    # for about the one second the session lasted.
    assert 100 <= sent <= 300
    assert host.stats.totals["audio_frames"] == sent
