"""Sound through the real session loops on loopback: capture-to-heard latency and A/V offset.

Cases, one run of ``SECONDS`` each; every figure comes from timing marks
found in what the sound device was given, never from a stamp:

- ``raw-pcm`` (the named baseline): the ``test`` capture's 5 ms chunks
  sent as raw PCM over a UDP socket on 127.0.0.1 and played by the same
  SDL device (disk driver, 256-sample buffer) from a FIFO that keeps at
  most one chunk and one device read, newest wins: no codec, no jitter
  buffer, no session.  The floor of capture -> UDP -> device here.
- ``session``: ``rootstream host --source test --audio test`` (a process,
  encrypted as by default) and a Client in this process (``present null``,
  sound through SDL's disk driver): AudioSender, sealed AUDIO datagrams, the
  client's receive loop, the adaptive jitter buffer and lip sync.
- ``session-clocked``: the same session, played by a stand-in device that
  keeps true time (a thread taking 256 samples at absolute deadlines, with
  the SDL callback's logic): the pipeline without the disk driver's drag.
- ``session-switch-1ms``: the clocked session with the client handing the
  GIL over every 1 ms instead of Python's 5 (``ClientAudio.switch_interval_s``):
  what that buys SDL's callback, which needs the GIL within its buffer.

A mark is heard when the fill holding it went to the device plus the
device's one buffer (``SdlAudioPlayback.device_latency_ns``); mark m was
captured at ``start + m * 100 ms`` on the host's monotonic clock (host and
client share it on one machine).  The A/V offset is a mark's latency minus
that of the video frame captured with it (within a frame interval): positive
when the sound comes late.  Its p50 is the lip-sync figure (target ±20 ms).

Run: ``pytest bench/bench_audio_path.py --benchmark-only -s``; the summary at
the end gives p50/p99 per case, the ratio to the baseline, the machine and
its load.  SDL's disk driver sleeps a whole buffer after each fill, so it
runs slow by however long the fill took (1% alone, 10-20% inside a busy
client: the ``device`` figure); the buffer cuts sound to keep up, which a
real sound card (0.01% drift) never makes it do.  ``session-clocked`` is
the figure for the pipeline; ``session`` is what the tests' device gives.
"""

from __future__ import annotations

import ctypes
import os
import re
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import Spawned, free_udp_port

from rootstream.audio.capture import open_audio_capture
from rootstream.audio.chunk import CHANNELS, RATE
from rootstream.audio.client_service import FillLog
from rootstream.audio.tone import find_marks
from rootstream.client import Client, ClientOptions
from rootstream.machine import describe_machine
from rootstream.session import ClientService

SECONDS = 10.0
DEVICE_SAMPLES = 256
CHUNK = 240  # the host's frame: 5 ms
MARK_NS = 100_000_000
SETTLE_S = 2.0  # start-up (device opening, first lip-sync steps) is not measured
_figures: dict[str, dict] = {}
_load: list[float] = []


@pytest.fixture(autouse=True)
def private_environment(tmp_path, monkeypatch):
    """A private identity store (host and client on this machine trust each
    other through it) and SDL's disk driver writing into the test's directory."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("SDL_AUDIODRIVER", "disk")
    monkeypatch.setenv("SDL_DISKAUDIOFILE", str(tmp_path / "played.raw"))
    _load.append(os.getloadavg()[0])
    return tmp_path


def mark_latencies(pcm: np.ndarray, timeline: np.ndarray, device_ns: int, start_ns: int,
                   guess) -> list[tuple[float, float]]:
    """(heard, captured) per mark in ``pcm``; ``guess(heard)`` (a latency within
    ±50 ms) only picks which mark, 100 ms apart, each one is."""
    found = []
    for onset in find_marks(pcm):
        row = int(np.searchsorted(timeline[:, 0], onset, side="right")) - 1
        if row < 0:
            continue
        heard = timeline[row, 1] + (onset - timeline[row, 0]) * 1e9 / RATE + device_ns
        mark = round((heard - guess(heard) - start_ns) / MARK_NS)
        found.append((heard, start_ns + mark * MARK_NS))
    return found


def device_rate(timeline: np.ndarray) -> float:
    """Samples per second the device took (48000 for a true clock): the disk
    driver sleeps a whole buffer after each fill, so it runs slow by however
    long the fill took."""
    span = timeline[-1] - timeline[len(timeline) // 5]
    return float(span[0] / (span[1] / 1e9))


def summarise(name: str, marks: list[tuple[float, float]], since_ns: float, **extra) -> dict:
    latencies = np.array([h - c for h, c in marks if h >= since_ns]) / 1e6
    figures = {"marks": int(latencies.size), **extra}
    if latencies.size:
        figures.update(p50=float(np.percentile(latencies, 50)),
                       p99=float(np.percentile(latencies, 99)), min=float(latencies.min()))
    _figures[name] = figures
    return figures


# -- the baseline: raw PCM over UDP into the same SDL device -------------------------------


class RawPcmPlayer:
    """SDL audio playing raw PCM as it arrives: at most one chunk and one read queued."""

    def __init__(self):
        import sdl2

        self._sdl = sdl2
        self._lock = threading.Lock()
        self._fifo = np.zeros((0, CHANNELS), np.int16)
        self.timeline: list[tuple[int, int]] = []
        self.played = 0
        self.underruns = 0
        self.trimmed = 0
        if sdl2.SDL_InitSubSystem(sdl2.SDL_INIT_AUDIO) != 0:
            raise RuntimeError(sdl2.SDL_GetError())
        self._callback = sdl2.SDL_AudioCallback(self._fill)
        want = sdl2.SDL_AudioSpec(RATE, sdl2.AUDIO_S16SYS, CHANNELS, DEVICE_SAMPLES,
                                  self._callback)
        have = sdl2.SDL_AudioSpec(0, 0, 0, 0)
        self._device = sdl2.SDL_OpenAudioDevice(None, 0, ctypes.byref(want),
                                                ctypes.byref(have), 0)
        if not self._device:
            raise RuntimeError(sdl2.SDL_GetError())
        self.device_ns = have.samples * 1_000_000_000 // RATE
        sdl2.SDL_PauseAudioDevice(self._device, 0)

    def push(self, pcm: np.ndarray) -> None:
        with self._lock:
            fifo = np.concatenate([self._fifo, pcm])
            keep = CHUNK + DEVICE_SAMPLES
            if fifo.shape[0] > keep:
                self.trimmed += fifo.shape[0] - keep
                fifo = fifo[-keep:]
            self._fifo = fifo

    def _fill(self, _userdata, stream, length) -> None:
        samples = length // (2 * CHANNELS)
        now = time.monotonic_ns()
        out = np.zeros((samples, CHANNELS), np.int16)
        with self._lock:
            take = self._fifo[:samples]
            self._fifo = self._fifo[samples:]
        out[:take.shape[0]] = take
        if take.shape[0] < samples:
            self.underruns += 1
        ctypes.memmove(stream, out.ctypes.data, length)
        self.timeline.append((self.played, now))
        self.played += samples

    def close(self) -> None:
        self._sdl.SDL_CloseAudioDevice(self._device)
        self._sdl.SDL_QuitSubSystem(self._sdl.SDL_INIT_AUDIO)


def run_raw_pcm(directory: Path) -> dict:
    player = RawPcmPlayer()
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.2)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    capture = open_audio_capture("test", chunk_samples=CHUNK)
    stop = threading.Event()

    def host():
        while not stop.is_set():
            sender.sendto(capture.read().pcm.tobytes(), receiver.getsockname())

    def client():
        while not stop.is_set():
            try:
                data = receiver.recv(4096)
            except TimeoutError:
                continue
            player.push(np.frombuffer(data, "<i2").reshape(-1, CHANNELS))

    threads = [threading.Thread(target=f, daemon=True) for f in (host, client)]
    for thread in threads:
        thread.start()
    started = time.monotonic_ns()
    time.sleep(SECONDS)
    stop.set()
    for thread in threads:
        thread.join(5)
    player.close()
    receiver.close()
    sender.close()
    pcm = np.fromfile(directory / "played.raw", "<i2").reshape(-1, CHANNELS)
    timeline = np.array(player.timeline, dtype=np.float64)
    # Nothing here can take 50 ms: the newest mark captured before it was heard.
    marks = mark_latencies(pcm, timeline, player.device_ns, capture.start_ns,
                           lambda heard: MARK_NS / 2)
    return summarise("raw-pcm", marks, started + SETTLE_S * 1e9,
                     underruns=player.underruns, trimmed_ms=player.trimmed * 1000 / RATE,
                     device_rate=device_rate(timeline))


# -- a sound device with a true clock -----------------------------------------------------


class ClockedPlayback:
    """The client's playback with a device that keeps time: a thread takes
    ``DEVICE_SAMPLES`` from the jitter buffer at absolute deadlines, exactly
    as SdlAudioPlayback's SDL callback does (lip sync included), and keeps
    what it played.  SDL's disk driver instead sleeps a buffer *after* each
    fill, so it runs slow by however long the fill took (10-20% in a busy
    client), and the buffer has to cut sound to keep up."""

    name = "clocked"
    driver = "clocked"

    def __init__(self, jitter, sync, **_):
        self.jitter, self.sync = jitter, sync
        self.device_samples = DEVICE_SAMPLES
        self.device_latency_ns = DEVICE_SAMPLES * 1_000_000_000 // RATE
        self.timeline: list[tuple[int, int]] = []
        self.output: list[np.ndarray] = []
        self.callback_errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clocked-device", daemon=True)
        self._thread.start()

    def push(self, payload, now_ns: int | None = None) -> None:
        with self._lock:
            self.jitter.push(payload, time.monotonic_ns() if now_ns is None else now_ns)

    def video_presented(self, host_captured_ns: int, client_presented_ns: int) -> None:
        self.sync.video_presented(host_captured_ns, client_presented_ns)

    def _run(self) -> None:
        played = 0
        deadline = time.monotonic_ns()
        while not self._stop.is_set():
            deadline += self.device_latency_ns
            wait = deadline - time.monotonic_ns()
            if wait > 0:
                time.sleep(wait / 1e9)
            now = time.monotonic_ns()
            with self._lock:
                pcm = self.jitter.read(DEVICE_SAMPLES, now)
                captured = self.jitter.last_read_captured_ns
                if captured is not None:
                    settling = (self.jitter.delay_ns or 0) - (self.jitter.target_delay_ns or 0)
                    self.sync.audio_played(captured, now + self.device_latency_ns, settling)
                    self.jitter.set_extra_delay(
                        self.sync.extra_delay_ns(self.jitter.extra_delay_ns))
            self.timeline.append((played, now))
            self.output.append(pcm)
            played += DEVICE_SAMPLES

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


# -- the real loops ------------------------------------------------------------------------


class ShownFrames(ClientService):
    """(host capture ns, shown ns) of every frame, the audio playback once open,
    and per device fill (heard ns, stamp-based latency), to tell marks apart."""

    def __init__(self):
        self.frames: list[tuple[int, int]] = []
        self.fills = FillLog()
        self.audio = None
        self.playback = None

    def frame_presented(self, frame, presented_ns):
        self.frames.append((frame.capture_ms * 1_000_000 + 500_000, presented_ns))
        if self.playback is None and self.audio is not None:
            self.playback = self.audio.playback
            if self.playback is not None:
                self.fills.attach(self.playback)


def run_session(name: str, directory: Path, switch_interval: float | None = None,
                clocked: bool = False) -> dict:
    port = free_udp_port()
    host = Spawned(f"host-{name}", [
        sys.executable, "-m", "rootstream_cli", "host", "--bind", "127.0.0.1", "--port",
        str(port), "--source", "test", "--size", "640x360", "--fps", "30", "--audio", "test",
        "--input", "none", "--sessions", "1", "--stats-interval", "2"], directory)
    try:
        host.wait_for("listening on")
        shown = ShownFrames()
        client = Client(ClientOptions(host=("127.0.0.1", port), present="null",
                                      seconds=SECONDS, stats_interval=60, input=False),
                        log=lambda line: None, services=[shown])
        shown.audio = client.audio
        client.audio.switch_interval_s = switch_interval
        if clocked:
            client.audio.opener = lambda name, **options: ClockedPlayback(**options)
        client.run()
        host.wait_for("said bye")
    finally:
        host.stop()
    playback = shown.playback
    assert playback is not None, "the client never opened its sound device"
    start = int(re.search(r"audio test signal starts at monotonic (\d+) ns",
                          host.log()).group(1))
    if clocked:
        pcm = np.concatenate(playback.output)
    else:
        pcm = np.fromfile(directory / "played.raw", "<i2").reshape(-1, CHANNELS)
    timeline = np.array(playback.timeline, dtype=np.float64)
    marks = mark_latencies(pcm, timeline, playback.device_latency_ns, start,
                           shown.fills.latency_ns)
    frames = np.array(shown.frames, dtype=np.float64)
    since = frames[0, 1] + SETTLE_S * 1e9
    offsets = []
    for heard, captured in marks:
        nearest = int(np.argmin(np.abs(frames[:, 0] - captured)))
        if heard >= since and abs(frames[nearest, 0] - captured) <= 1e9 / 30:
            offsets.append(((heard - captured) - (frames[nearest, 1] - frames[nearest, 0])) / 1e6)
    offsets = np.array(offsets)
    video = (frames[:, 1] - frames[:, 0]) / 1e6
    stats = playback.jitter.stats
    return summarise(
        name, marks, since,
        offset_p50=float(np.median(offsets)) if offsets.size else float("nan"),
        offset_p1=float(np.percentile(offsets, 1)) if offsets.size else float("nan"),
        offset_p99=float(np.percentile(offsets, 99)) if offsets.size else float("nan"),
        video_p50=float(np.median(video)), client_offset=(client.audio.offsets_ns or [0])[-1] / 1e6,
        extra_ms=playback.jitter.extra_delay_ns / 1e6, underruns=stats.underruns,
        lost=stats.lost, cut_ms=stats.cut_samples * 1000 / RATE,
        device_rate=device_rate(timeline))


def test_raw_pcm_baseline(benchmark, bench_summary, private_environment):
    benchmark.pedantic(lambda: run_raw_pcm(private_environment), rounds=1, iterations=1)
    bench_summary.record(benchmark, "raw-pcm")
    benchmark.extra_info.update(_figures["raw-pcm"])
    assert _figures["raw-pcm"]["marks"] >= SECONDS * 5


def test_session(benchmark, bench_summary, private_environment):
    benchmark.pedantic(lambda: run_session("session", private_environment), rounds=1,
                       iterations=1)
    bench_summary.record(benchmark, "session")
    benchmark.extra_info.update(_figures["session"])
    assert _figures["session"]["marks"] >= SECONDS * 5


def test_session_clocked_device(benchmark, bench_summary, private_environment):
    benchmark.pedantic(lambda: run_session("session-clocked", private_environment,
                                           clocked=True), rounds=1, iterations=1)
    bench_summary.record(benchmark, "session-clocked")
    benchmark.extra_info.update(_figures["session-clocked"])
    assert _figures["session-clocked"]["marks"] >= SECONDS * 5


def test_session_switch_interval_1ms(benchmark, bench_summary, private_environment):
    benchmark.pedantic(lambda: run_session("session-switch-1ms", private_environment, 0.001,
                                           clocked=True), rounds=1, iterations=1)
    bench_summary.record(benchmark, "session-switch-1ms")
    benchmark.extra_info.update(_figures["session-switch-1ms"])
    assert _figures["session-switch-1ms"]["marks"] >= SECONDS * 5


def summary_lines(results) -> list[str]:
    machine = describe_machine()
    lines = ["", f"audio capture -> heard over loopback, {SECONDS:g} s per case "
                 f"(first {SETTLE_S:g} s not measured); machine: {machine.cpu}, "
                 f"{machine.cpus} CPUs, {machine.system}; load average at each start: "
                 + ", ".join(f"{x:.1f}" for x in _load)]
    base = _figures.get("raw-pcm", {}).get("p50")
    for name, f in _figures.items():
        if "p50" not in f:
            lines.append(f"  {name:20} no marks measured")
            continue
        line = (f"  {name:20} p50 {f['p50']:6.1f} ms  p99 {f['p99']:6.1f} ms  "
                f"min {f['min']:6.1f} ms  ({f['marks']} marks)")
        if base and name != "raw-pcm":
            line += f"  {f['p50'] / base:.2f}x raw-pcm"
        lines.append(line)
        if "offset_p50" in f:
            lines.append(
                f"  {'':20} A/V offset p50 {f['offset_p50']:+.1f} ms (p1 {f['offset_p1']:+.1f}, "
                f"p99 {f['offset_p99']:+.1f}); picture p50 {f['video_p50']:.1f} ms; "
                f"client's figure {f['client_offset']:+.1f} ms; extra delay {f['extra_ms']:.1f} "
                f"ms; underruns {f['underruns']}, lost {f['lost']}, cut {f['cut_ms']:.0f} ms; "
                f"device {f['device_rate']:.0f} samples/s")
        else:
            lines.append(f"  {'':20} underruns {f['underruns']}, trimmed {f['trimmed_ms']:.0f} "
                         f"ms; device {f['device_rate']:.0f} samples/s")
    lines.append("  goal: session p50 < 40 ms, A/V offset within ±20 ms")
    return lines
