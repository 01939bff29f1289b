"""PipeWire stream consumer: what a frame costs us, and how long it takes to reach the reader.

A private pipewire + wireplumber session and a producer node in another
process (tests/pipewire_helpers.py), like a compositor's screencast: it fills a
buffer, stamps its header pts with CLOCK_MONOTONIC and queues it.

- ``process+copy``: one ``process`` callback that delivered a picture, dequeue
  to requeue (the copy into our array is nearly all of it), from
  ``PipeWireStream.process_ns``.  Baseline in the same run: one ``np.copyto``
  of a frame of the same size, the floor for a copy out of the buffer.
- ``queue->wait_frame``: the producer's pts (just before it queues) to
  ``wait_frame()`` returning in our reader thread: PipeWire's graph cycle, the
  wake-up of our loop thread, the copy, and the reader's wake-up.  Frames are
  spaced 20 ms apart, so each one finds an idle graph, as a desktop that just
  changed does.
- ``continuous 60 fps``: the producer pushes every 16.7 ms while a reader
  thread takes frames as they come (a game repainting every frame): the same
  latency, frames dropped, and the CPU our process spent (user + system time
  over wall time; the producer process is not counted).

Run: ``.venv/bin/python bench/bench_pipewire.py [frames]`` (or through pytest).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pipewire_helpers import PipeWireSession, ProducerProcess  # noqa: E402

from rootstream.capture.pipewire_stream import PipeWireStream  # noqa: E402

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def percentiles(values_ns: list[int]) -> str:
    ordered = sorted(values_ns)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered) / 1e6:6.3f} ms  p99 {p99 / 1e6:6.3f} ms"


def copy_floor(width: int, height: int, rounds: int) -> list[int]:
    source = np.ones((height, width * 4), np.uint8)
    dest = np.empty_like(source)
    times = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        np.copyto(dest, source)
        times.append(time.perf_counter_ns() - start)
    return times


def measure(session: PipeWireSession, width: int, height: int, frames: int) -> dict:
    producer = ProducerProcess(session, width, height)
    try:
        with PipeWireStream(producer.node_id) as stream:
            latencies = []
            for _ in range(frames):
                producer.push()
                frame = stream.wait_frame(2.0)
                done = time.monotonic_ns()
                if frame is None:
                    raise RuntimeError("a pushed frame did not arrive within 2 s")
                latencies.append(done - frame.pts_ns)
                time.sleep(0.02)
            process = [int(v) for v in stream.process_ns._values[:len(stream.process_ns)]]
            return {"process": process, "latency": latencies, "dropped": stream.dropped}
    finally:
        producer.close()


def measure_continuous(session: PipeWireSession, width: int, height: int, frames: int) -> dict:
    producer = ProducerProcess(session, width, height)
    latencies: list[int] = []
    try:
        with PipeWireStream(producer.node_id) as stream:
            def read() -> None:
                while len(latencies) < frames:
                    frame = stream.wait_frame(1.0)
                    if frame is None:
                        return
                    latencies.append(time.monotonic_ns() - frame.pts_ns)

            reader = threading.Thread(target=read)
            cpu_before, wall_before = os.times(), time.monotonic()
            reader.start()
            next_push = time.monotonic()
            while reader.is_alive():
                producer.push()
                next_push += 1 / 60
                time.sleep(max(0.0, next_push - time.monotonic()))
            reader.join()
            cpu_after, wall = os.times(), time.monotonic() - wall_before
            cpu = (cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system)
            return {"latency": latencies, "dropped": stream.dropped,
                    "cpu": 100 * cpu / wall}
    finally:
        producer.close()


def main(frames: int = 200) -> list[str]:
    session = PipeWireSession().start()
    os.environ.update(XDG_RUNTIME_DIR=str(session.runtime),
                      PIPEWIRE_RUNTIME_DIR=str(session.runtime))
    lines = [f"PipeWire consumer, {frames} frames per size, {cpu_name()}, "
             f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"]
    try:
        for name, (width, height) in SIZES.items():
            result = measure(session, width, height, frames)
            lines.append(f"{name} process+copy       {percentiles(result['process'])}")
            lines.append(f"{name} np.copyto floor    "
                         f"{percentiles(copy_floor(width, height, frames))}")
            lines.append(f"{name} queue->wait_frame  {percentiles(result['latency'])}"
                         f"  (dropped {result['dropped']})")
            result = measure_continuous(session, width, height, frames)
            lines.append(f"{name} continuous 60 fps  {percentiles(result['latency'])}"
                         f"  (dropped {result['dropped']}, our CPU {result['cpu']:.1f} %)")
    finally:
        session.stop()
    return lines


def test_pipewire_figures():
    print("\n" + "\n".join(main(60)))


if __name__ == "__main__":
    print("\n".join(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)))
