"""Host and client processing time, and what the two processes cost, on loopback.

- ``test_loopback``: ``rootstream host --source test --encoder x264`` and
  ``rootstream connect --present null`` as two processes on 127.0.0.1 for
  ``SECONDS`` at 1280x720@60 and 1920x1080@60.  Latency percentiles come from
  the processes' own stats rings (``--stats-json``): host processing is
  capture to the last datagram sent (ring ``host``), client processing first
  datagram to presented (ring ``client``), with the stages that make them up.
  CPU (user+sys seconds per second of streaming) and peak RSS come from /proc
  of the two processes.  Targets on the reference machine: host p50 <= 6 ms
  at 720p, <= 10 ms at 1080p; client p50 <= 3 ms.
- ``test_stage_breakdown``: the host's and client's per-frame work done
  in-process, one stage at a time on one thread, with nothing else running in
  the process: drawing the test pattern, BGRX->NV12, x264 (FFmpeg's thread
  default, and one and two threads), fragmenting with FEC, decoding.  The
  "convert" ring of the host includes the pattern drawing (the capture stamp
  is taken before it) and its "encode" ring includes the wait in the mailbox;
  this is where to look when one of them dominates.

The rings hold the last 1024 samples, so a 10 s run at 60 fps is all there,
start-up (the first keyframe) included.  Timings are reported, never
asserted; a run fails when the pipeline breaks: no frames shown, or the test
pattern's marker unreadable after the trip (no ``glass`` samples).

Run ``python -m pytest bench/bench_e2e.py -s`` (one run per case; set
``ROOTSTREAM_BENCH_REPEATS=3`` for more) or ``python bench/bench_e2e.py
[--repeats 3]`` for the table with medians and ranges.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import av
import pytest
from conftest import CpuWindow, Spawned, free_udp_port, last_report, machine_lines, spread

from rootstream.capture.pattern import PatternCapture
from rootstream.convert import NV12Converter
from rootstream.decode import open_decoder
from rootstream.encode import open_encoder
from rootstream.frame import CapturedFrame
from rootstream.protocol import VideoFragmenter

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
HOST_TARGET_MS = {"720p": 6.0, "1080p": 10.0}
CLIENT_TARGET_MS = 3.0
FPS = 60
BITRATE_MBPS = 10
SECONDS = 10.0
WARMUP_S = 1.0
HOST_STAGES = ("convert", "encode", "send", "host")
CLIENT_STAGES = ("assemble", "decode", "present", "client", "glass")
BREAKDOWN_FRAMES = 120
# Host options measured side by side, when this host's command line has them:
# pacing spreads a frame's datagrams over up to half a frame interval, which
# lands in the "send" stage and in the client's "assemble".
VARIANTS = {"default": [], "no-pacing": ["--no-pacing"]}


def host_variants() -> list[str]:
    """The variants whose options ``rootstream host`` accepts here."""
    usage = subprocess.run([sys.executable, "-m", "rootstream_cli", "host", "--help"],
                           capture_output=True, text=True, timeout=60).stdout
    return [name for name, args in VARIANTS.items() if all(a in usage for a in args)]


@dataclass
class LoopbackRun:
    size: str
    variant: str
    host: dict[str, dict[str, float]]  # ring -> p50/p95/p99 ms
    client: dict[str, dict[str, float]]
    host_fps: float
    client_fps: float
    frames_shown: int
    processes: dict[str, dict[str, float]]  # host/client -> cpu, peak_rss_mb


def _median_fps(path: Path) -> float:
    """Median frame rate of the full report intervals (the last, partial one left out)."""
    rates = [json.loads(line)["fps"] for line in path.read_text().splitlines()]
    rates = [r for r in rates[:-1] if r > 0] or rates
    return statistics.median(rates) if rates else 0.0


def run_loopback(size: str, log_dir: Path, *, seconds: float = SECONDS,
                 variant: str = "default") -> LoopbackRun:
    """One host and one null client streaming the test pattern for ``seconds``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    width, height = SIZES[size]
    port = free_udp_port()
    python = [sys.executable, "-m", "rootstream_cli"]
    host = Spawned("host", python + [
        "host", "--source", "test", "--size", f"{width}x{height}", "--fps", str(FPS),
        "--encoder", "x264", "--bitrate", str(BITRATE_MBPS), "--bind", "127.0.0.1",
        "--port", str(port), "--stats-interval", "1",
        "--stats-json", str(log_dir / "host.jsonl"), "--sessions", "1", *VARIANTS[variant]],
        log_dir)
    client = None
    try:
        host.wait_for("listening on")
        client = Spawned("client", python + [
            "connect", f"127.0.0.1:{port}", "--present", "null", "--same-clock",
            "--stats-interval", "1", "--stats-json", str(log_dir / "client.jsonl")], log_dir)
        client.wait_for("showing with null")
        time.sleep(WARMUP_S)
        cpu = CpuWindow({"host": host.pid, "client": client.pid})
        time.sleep(seconds)
        processes = cpu.finish()
        client.stop()
        host.proc.wait(10)  # --sessions 1: the host leaves after the client's bye
    finally:
        if client is not None:
            client.stop()
        host.stop()
    shown = client.log().rsplit("frames shown", 1)[0].rsplit(";", 1)[-1].strip()
    if not shown.isdigit() or int(shown) == 0:
        raise RuntimeError(f"{size}: the client showed no frames:\n{client.log()}")
    host_report = last_report(log_dir / "host.jsonl", "host")
    client_report = last_report(log_dir / "client.jsonl", "client")
    if not client_report["latency_ms"].get("glass"):
        raise RuntimeError(f"{size}: the client read no test-pattern marker after the trip")
    return LoopbackRun(size, variant, host_report["latency_ms"], client_report["latency_ms"],
                       _median_fps(log_dir / "host.jsonl"), _median_fps(log_dir / "client.jsonl"),
                       int(shown), processes)


def loopback_table(runs: list[LoopbackRun], seconds: float = SECONDS) -> list[str]:
    lines = ["", f"processing on loopback, test pattern, x264 {BITRATE_MBPS} Mbit/s, null "
                 f"presenter, {seconds:g} s per run (ms p50/p95/p99; median of runs, range)"]
    for size, variant in itertools.product(SIZES, VARIANTS):
        group = [r for r in runs if r.size == size and r.variant == variant]
        if not group:
            continue
        lines.append(f"  {size}@{FPS} {variant} ({len(group)} runs; host "
                     f"{spread(r.host_fps for r in group)} fps, client "
                     f"{spread(r.client_fps for r in group)} fps)")
        for side, stages in (("host", HOST_STAGES), ("client", CLIENT_STAGES)):
            for stage in stages:
                rings = [getattr(r, side).get(stage) for r in group]
                if not all(rings):
                    continue
                cells = "  ".join(f"{p} {spread(ring[p] for ring in rings)}"
                                  for p in ("p50", "p95", "p99"))
                mark = {"host": f"  (target p50 <= {HOST_TARGET_MS[size]:g})",
                        "client": f"  (target p50 <= {CLIENT_TARGET_MS:g})"}
                note = mark.get(stage, "") if stage == side else ""
                lines.append(f"    {side:6} {stage:9} {cells}{note}")
        for name in ("host", "client"):
            cpu = spread(r.processes[name]["cpu"] for r in group)
            rss = spread(r.processes[name]["peak_rss_mb"] for r in group)
            lines.append(f"    {name:6} process   cpu {cpu} s/s, peak RSS {rss} MB")
    return lines + ["  " + line for line in machine_lines()]


# -- in-process stage breakdown ------------------------------------------------------------


def _median_ms(samples: list[int]) -> float:
    return statistics.median(samples) / 1e6


def stage_breakdown(size: str, frames: int = BREAKDOWN_FRAMES) -> dict[str, float]:
    """Median milliseconds per frame of each stage, run one after the other."""
    width, height = SIZES[size]
    pattern = PatternCapture(width, height, FPS)
    converter = NV12Converter(width, height, "BGRX", pool_size=2)
    fragmenter = VideoFragmenter(fec_share=0.2)
    encoders = {"x264 (default threads)": {}, "x264 threads=1": {"threads": "1"},
                "x264 threads=2": {"threads": "2"}}
    times: dict[str, list[int]] = {name: [] for name in
                                   ("render", "convert", *encoders, "fragment+fec", "decode")}
    opened = {name: open_encoder("x264", width=width, height=height, fps=FPS,
                                 bitrate=BITRATE_MBPS * 1_000_000, **opts)
              for name, opts in encoders.items()}
    decoder = open_decoder("auto")
    clock = time.perf_counter_ns
    try:
        for number in range(frames):
            t0 = clock()
            pixels = pattern.render(number, time.monotonic_ns())
            t1 = clock()
            captured = CapturedFrame(pixels, width, height, pixels.shape[1], "BGRX", number)
            picture = converter.convert(captured)
            t2 = clock()
            times["render"].append(t1 - t0)
            times["convert"].append(t2 - t1)
            units = []
            for name, encoder in opened.items():
                start = clock()
                got = encoder.encode(picture, force_keyframe=number == 0)
                times[name].append(clock() - start)
                units = units or got
            if not units:
                raise RuntimeError(f"{size}: x264 returned no packet for frame {number}")
            data = b"".join(unit.data for unit in units)
            start = clock()
            fragmenter.fragment(data, keyframe=units[0].keyframe, host_us=0)
            times["fragment+fec"].append(clock() - start)
            start = clock()
            if not decoder.decode(data):
                raise RuntimeError(f"{size}: the decoder returned no picture for frame {number}")
            times["decode"].append(clock() - start)
    finally:
        for encoder in opened.values():
            encoder.close()
        decoder.close()
    # The first frame is a keyframe and pays for start-up: leave it out.
    return {name: _median_ms(samples[1:]) for name, samples in times.items()}


def breakdown_table(results: dict[str, list[dict[str, float]]]) -> list[str]:
    lines = ["", f"per-frame work, in-process, one stage at a time (ms, median of "
                 f"{BREAKDOWN_FRAMES - 1} frames; median of runs, range)"]
    for size, runs in results.items():
        lines.append(f"  {size}")
        for stage in runs[0]:
            lines.append(f"    {stage:24} {spread(r[stage] for r in runs)}")
    return lines


# -- pytest ----------------------------------------------------------------------------------


def _x264_missing() -> str:
    """Why these cases cannot run here ("" when they can): they need PyAV's libx264."""
    try:
        av.codec.Codec("libx264", "w")
    except Exception as exc:  # PyAV says "unknown codec" in several exception types
        return f"PyAV has no libx264 encoder here ({exc})"
    return ""


def _repeats() -> int:
    return max(1, int(os.environ.get("ROOTSTREAM_BENCH_REPEATS", "1")))


def _emit(request, lines: list[str]) -> None:
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n".join(lines))


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("size", list(SIZES))
def test_loopback(size, variant, tmp_path, request):
    if _x264_missing():
        pytest.skip(_x264_missing())
    if variant not in host_variants():
        pytest.skip(f"this rootstream host has no {' '.join(VARIANTS[variant])} option")
    runs = [run_loopback(size, tmp_path / str(i), variant=variant) for i in range(_repeats())]
    _emit(request, loopback_table(runs))


@pytest.mark.parametrize("size", list(SIZES))
def test_stage_breakdown(size, request):
    if _x264_missing():
        pytest.skip(_x264_missing())
    runs = [stage_breakdown(size) for _ in range(_repeats())]
    _emit(request, breakdown_table({size: runs}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Host and client processing time on loopback.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--no-breakdown", action="store_true")
    parser.add_argument("--logs", default=None, help="keep the processes' logs here")
    args = parser.parse_args(argv)
    sizes = args.sizes.split(",")
    variants = host_variants()
    runs: list[LoopbackRun] = []
    breakdown: dict[str, list[dict[str, float]]] = {size: [] for size in sizes}
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as scratch:
        root = Path(args.logs) if args.logs else Path(scratch)
        for repeat in range(args.repeats):
            for size in sizes:
                for variant in variants:
                    runs.append(run_loopback(size, root / f"{repeat}-{size}-{variant}",
                                             seconds=args.seconds, variant=variant))
                if not args.no_breakdown:
                    breakdown[size].append(stage_breakdown(size))
    print("\n".join(loopback_table(runs, args.seconds)))
    if not args.no_breakdown:
        print("\n".join(breakdown_table(breakdown)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
