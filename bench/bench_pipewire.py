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

Run: ``.venv/bin/python bench/bench_pipewire.py [frames]`` (or through pytest).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pipewire_helpers import PipeWireSession, ProducerProcess  # noqa: E402

from rootstream.capture.pipewire_stream import PipeWireStream  # noqa: E402

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}


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


def main(frames: int = 200) -> list[str]:
    session = PipeWireSession().start()
    os.environ.update(XDG_RUNTIME_DIR=str(session.runtime),
                      PIPEWIRE_RUNTIME_DIR=str(session.runtime))
    lines = [f"PipeWire consumer, {frames} frames per size, {platform.processor() or 'cpu'}, "
             f"{os.cpu_count()} cores"]
    try:
        for name, (width, height) in SIZES.items():
            result = measure(session, width, height, frames)
            lines.append(f"{name} process+copy       {percentiles(result['process'])}")
            lines.append(f"{name} np.copyto floor    "
                         f"{percentiles(copy_floor(width, height, frames))}")
            lines.append(f"{name} queue->wait_frame  {percentiles(result['latency'])}"
                         f"  (dropped {result['dropped']})")
    finally:
        session.stop()
    return lines


def test_pipewire_figures():
    print("\n" + "\n".join(main(60)))


if __name__ == "__main__":
    print("\n".join(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)))
