"""Which of the hot path's native calls hold the GIL (issue 15's tail)?

A thread that sleeps 1 ms again and again stands for a stage that wakes (a
datagram, a finished encode).  While the main thread runs one of the hot
path's calls in a loop, the sleeper's lateness is measured: a call that
releases the GIL leaves it at the machine's own scheduling noise (compare
``idle``, the main thread asleep); a call that holds it makes the sleeper wait
for the call, or for the switch interval when the call is Python code
(``python``, the positive control: a pure-Python loop).

Run ``python bench/gil_holders.py [--size 1920x1080] [--seconds 2]
[--switch-ms 5]``; the table gives the sleeper's lateness p50 / p99 / max in
ms per call, and the call's own time.  Another process's load shows in every
row alike: read the rows against ``idle``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable

import numpy as np
from av.video.reformatter import VideoReformatter

from rootstream.capture.pattern import PatternCapture
from rootstream.convert import NV12Converter
from rootstream.decode import open_decoder
from rootstream.encode import open_encoder, pattern_nv12

SLEEP_S = 0.001


def _lateness_during(call: Callable[[], None], seconds: float) -> tuple[list[float], float]:
    """The sleeper's lateness (ms) while ``call`` runs in a loop; the call's median ms."""
    late: list[float] = []
    stop = threading.Event()

    def sleeper():
        while not stop.is_set():
            start = time.perf_counter()
            time.sleep(SLEEP_S)
            late.append((time.perf_counter() - start - SLEEP_S) * 1e3)

    thread = threading.Thread(target=sleeper, name="sleeper")
    thread.start()
    took = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        start = time.perf_counter()
        call()
        took.append((time.perf_counter() - start) * 1e3)
    stop.set()
    thread.join()
    return late, statistics.median(took)


def hot_calls(width: int, height: int) -> dict[str, Callable[[], None]]:
    """One call of each native step of the hot path, on real data of this size."""
    capture = PatternCapture(width=width, height=height, fps=1000)
    captured = capture.grab(timeout=1.0, force=True)
    converter = NV12Converter(width, height, captured.pixel_format, pool_size=4)
    encoder = open_encoder("x264", width=width, height=height, fps=60, bitrate=10_000_000)
    frames = [pattern_nv12(width, height, i) for i in range(8)]
    units = [encoder.encode(frame, force_keyframe=i == 0)[0] for i, frame in enumerate(frames)]
    decoder = open_decoder("software")
    pictures = [picture for unit in units for picture in decoder.decode(unit.data)]
    reformatter = VideoReformatter()
    target = np.zeros((height, width * 4), dtype=np.uint8)
    source = np.ones_like(target)
    counter = iter(range(1 << 62))

    def encode():
        encoder.encode(frames[next(counter) % len(frames)])

    def decode():  # P-frames after the keyframe, over and over: same cost as the stream's
        decoder.decode(units[1 + next(counter) % (len(units) - 1)].data)

    def python():
        total = 0
        for i in range(20_000):
            total += i

    return {
        "idle": lambda: time.sleep(0.005),
        "python": python,
        "convert (_nv12)": lambda: converter.convert(captured),
        "encode (x264)": encode,
        "decode (FFmpeg)": decode,
        "reformat (swscale)": lambda: reformatter.reformat(pictures[-1], width, height, "bgra"),
        "np.copyto": lambda: np.copyto(target, source),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--switch-ms", type=float, default=None,
                        help="sys.setswitchinterval for the run (default: Python's)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.switch_ms is not None:
        sys.setswitchinterval(args.switch_ms / 1e3)
    print(f"{width}x{height}, switch interval {sys.getswitchinterval() * 1e3:g} ms; "
          "a 1 ms sleeper's lateness while the main thread runs each call (ms)")
    for name, call in hot_calls(width, height).items():
        late, took = _lateness_during(call, args.seconds)
        late.sort()
        print(f"  {name:20} call {took:6.2f}  late p50 {late[len(late) // 2]:5.2f}  "
              f"p99 {late[int(0.99 * (len(late) - 1))]:5.2f}  max {late[-1]:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def start_probe(path: str, seconds: float = 3600.0) -> None:
    """A sleeper thread inside this process (a host or client run by the bench, started
    with ``-c "...; gil_holders.start_probe(PATH)"``): its lateness, written to ``path``
    as JSON at exit, is how long a stage that wakes waited for the GIL and the CPU."""
    import atexit
    import json

    late: list[float] = []

    def sleeper():
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            start = time.perf_counter()
            time.sleep(SLEEP_S)
            late.append((time.perf_counter() - start - SLEEP_S) * 1e3)

    def write():
        with open(path, "w") as out:
            json.dump(late, out)

    atexit.register(write)
    threading.Thread(target=sleeper, name="gil-probe", daemon=True).start()
