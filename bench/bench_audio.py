"""Sound: cost per 10 ms frame, and capture-to-playback latency on loopback.

Per-frame cost (stereo, 48 kHz, 10 ms = 480 samples):

- ``opus-encode``: one ``OpusEncoder.encode`` (libopus through PyAV,
  restricted low delay, CBR 128 kbit/s).
- ``opus-decode``: one ``OpusDecoder.decode`` of such a frame.
- ``opus-conceal``: one frame of packet-loss concealment.
- ``sender-frame``: one frame through ``AudioSender`` (encode + AUDIO payload
  with its redundant copy).
- ``jitter-frame``: one payload pushed into the ``JitterBuffer`` and 10 ms
  read back out at a playout ratio of 1.001 (decode + cubic resampling).
- Named baseline, measured in the same run: ``pcm-copy``, copying the raw
  10 ms frame into bytes - what sending PCM uncompressed would cost.

Latency (``path-latency``): the ``test`` capture backend (real-time paced,
timing marks every 100 ms) -> AudioSender -> ROOT datagrams over a real UDP
socket on 127.0.0.1 -> JitterBuffer, read by a thread that keeps a sound
device's clock (absolute deadlines, 256 samples per read) and adds that
device's one buffer of output latency.  Each mark found in the output gives
``heard - captured`` on the one monotonic clock: p50 and p99 over 10 s.

Run: ``pytest bench/bench_audio.py --benchmark-only``; the summary at the end
lists median and p99 per frame, the ratios to the baseline and the latency.
"""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from rootstream.audio.capture import open_audio_capture
from rootstream.audio.jitter import JitterBuffer
from rootstream.audio.opus import OpusDecoder, OpusEncoder
from rootstream.audio.sender import AudioSender
from rootstream.audio.tone import ToneSignal, find_marks
from rootstream.protocol.audio import AudioPayload
from rootstream.protocol.header import PacketType, decode_datagram, encode_datagram

FRAMES = 200
DEVICE_SAMPLES = 256
LATENCY_SECONDS = 10.0
_latency: dict[str, float] = {}


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    signal = ToneSignal()
    return [signal.render(i * 480, 480) for i in range(FRAMES)]


@pytest.fixture(scope="module")
def packets(frames) -> list[bytes]:
    encoder = OpusEncoder()
    return [encoder.encode(f) for f in frames]


def cycle(items):
    state = {"i": 0}

    def next_item():
        item = items[state["i"] % len(items)]
        state["i"] += 1
        return item
    return next_item


def test_pcm_copy_baseline(benchmark, bench_summary, frames):
    next_frame = cycle(frames)
    benchmark(lambda: next_frame().tobytes())
    bench_summary.record(benchmark, "pcm-copy")


def test_opus_encode(benchmark, bench_summary, frames):
    encoder = OpusEncoder()
    next_frame = cycle(frames)
    benchmark(lambda: encoder.encode(next_frame()))
    bench_summary.record(benchmark, "opus-encode")


def test_opus_decode(benchmark, bench_summary, packets):
    decoder = OpusDecoder()
    next_packet = cycle(packets)
    benchmark(lambda: decoder.decode(next_packet(), 480))
    bench_summary.record(benchmark, "opus-decode")


def test_opus_conceal(benchmark, bench_summary, packets):
    decoder = OpusDecoder()
    decoder.decode(packets[0], 480)
    benchmark(lambda: decoder.conceal(480))
    bench_summary.record(benchmark, "opus-conceal")


def test_sender_frame(benchmark, bench_summary, frames):
    sender = AudioSender()
    next_frame = cycle(frames)
    stamp = {"ns": 10**12}

    def one():
        stamp["ns"] += 10_000_000
        return sender.encode_frame(next_frame(), stamp["ns"])
    benchmark(one)
    bench_summary.record(benchmark, "sender-frame")


def test_jitter_frame(benchmark, bench_summary, frames):
    sender = AudioSender()
    payloads = [AudioPayload.parse(sender.encode_frame(f, 10**12 + i * 10_000_000))
                for i, f in enumerate(frames)]
    state = {"i": 0, "now": 10**12, "jitter": JitterBuffer()}

    def one():
        i = state["i"]
        if i % len(payloads) == 0:
            state["jitter"] = JitterBuffer()  # the stream starts over: a fresh buffer
            state["now"] = 10**12 + 20_000_000
        jitter = state["jitter"]
        jitter.push(payloads[i % len(payloads)], state["now"])
        jitter.ratio = 1.001
        jitter.read(480, state["now"])
        state["i"] += 1
        state["now"] += 10_000_000
    benchmark(one)
    bench_summary.record(benchmark, "jitter-frame")


def _path_latency(seconds: float) -> tuple[np.ndarray, dict]:
    """Run host, loopback UDP and client device threads; return mark latencies in ms."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.2)
    address = receiver.getsockname()
    jitter = JitterBuffer()
    lock = threading.Lock()
    stop = threading.Event()
    capture = open_audio_capture("test")
    heard: list[tuple[int, int]] = []  # (first output sample, client time it is heard)
    output: list[np.ndarray] = []
    device_ns = DEVICE_SAMPLES * 1_000_000_000 // 48000

    def host():
        audio = AudioSender()
        sequence = 0
        while not stop.is_set():
            for payload in audio.push(capture.read()):
                now_ms = time.monotonic_ns() // 1_000_000
                sender_sock.sendto(encode_datagram(PacketType.AUDIO, sequence, now_ms, payload),
                                   address)
                sequence += 1

    def network():
        while not stop.is_set():
            try:
                datagram = receiver.recv(2048)
            except TimeoutError:
                continue
            _, body = decode_datagram(datagram)
            payload = AudioPayload.parse(body)
            with lock:
                jitter.push(payload, time.monotonic_ns())

    def device():
        played = 0
        deadline = time.monotonic_ns()
        while not stop.is_set():
            deadline += device_ns
            wait = deadline - time.monotonic_ns()
            if wait > 0:
                time.sleep(wait / 1e9)
            now = time.monotonic_ns()
            with lock:
                pcm = jitter.read(DEVICE_SAMPLES, now)
            heard.append((played, now + device_ns))
            output.append(pcm)
            played += DEVICE_SAMPLES

    threads = [threading.Thread(target=f, daemon=True) for f in (host, network, device)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(5)
    receiver.close()
    sender_sock.close()
    capture.close()
    pcm = np.concatenate(output)
    starts = np.array(heard, dtype=np.float64)
    latencies = []
    for onset in find_marks(pcm):
        row = int(np.searchsorted(starts[:, 0], onset, side="right")) - 1
        heard_at = starts[row, 1] + (onset - starts[row, 0]) * 1e9 / 48000
        mark = int((heard_at - capture.start_ns) // 100e6)  # the newest mark captured by then
        latencies.append((heard_at - capture.captured_ns_at(mark * 4800)) / 1e6)
    stats = jitter.stats
    return np.array(latencies[5:]), {  # the first half second is start-up
        # One process, one clock: the buffer's target is capture -> read in real ms.
        "target_ms": (jitter.target_delay_ns or 0) / 1e6,
        "underruns": stats.underruns, "concealed": stats.concealed_samples,
        "received": stats.received,
    }


def test_path_latency(benchmark):
    result = {}

    def run():
        result["latencies"], result["info"] = _path_latency(LATENCY_SECONDS)
    benchmark.pedantic(run, rounds=1, iterations=1)
    latencies = result["latencies"]
    assert len(latencies) >= LATENCY_SECONDS * 5  # the marks came through
    _latency["p50"] = float(np.percentile(latencies, 50))
    _latency["p99"] = float(np.percentile(latencies, 99))
    _latency["min"] = float(latencies.min())
    _latency.update(result["info"])
    benchmark.extra_info.update(_latency)


RATIOS = [("opus-encode", "pcm-copy"), ("opus-decode", "pcm-copy"),
          ("opus-conceal", "pcm-copy"), ("sender-frame", "pcm-copy"),
          ("jitter-frame", "pcm-copy")]


def summary_lines(results) -> list[str]:
    lines = ["", "audio per 10 ms stereo frame: median / p99"]
    for (name,), (median, p99) in results.items():
        if name != "path-latency":
            lines.append(f"  {name:16} {median * 1e6:9.1f} us / {p99 * 1e6:9.1f} us")
    for subject, baseline in RATIOS:
        if (subject,) in results and (baseline,) in results:
            ratio = results[(subject,)][0] / results[(baseline,)][0]
            lines.append(f"  {subject} / {baseline} = {ratio:.1f}x (median)")
    if _latency:
        lines.append(
            f"audio path capture -> heard, loopback UDP: p50 {_latency['p50']:.1f} ms, "
            f"p99 {_latency['p99']:.1f} ms, min {_latency['min']:.1f} ms "
            f"(goal: p50 < 40 ms); jitter buffer target at the end "
            f"{_latency['target_ms']:.1f} ms + {DEVICE_SAMPLES} samples of device buffer; "
            f"underruns {_latency['underruns']}, concealed samples {_latency['concealed']}")
    return lines
