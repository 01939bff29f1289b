"""Glass to glass on Xvfb: rootstream against a GStreamer pipeline, read off the pixels.

Two Xvfb screens of exactly the stream size: A is the host's, B the client's.
The observer (bench/observer.py) paints the marked test pattern on A at 60 Hz
and reads the marker back off B; latency is its own clock from "the pixels
are on A" to "the same frame number is on B".  Nothing the pipeline under
test reports is used for the latency.

- rootstream: ``rootstream host --source x11`` on A (MIT-SHM + XDAMAGE, x264)
  and ``rootstream connect --present sdl`` with SDL's x11 driver on B;
- GStreamer, the named baseline (bench/gstreamer.py): ximagesrc on A,
  ximagesink on B, x264 at the same bitrate, RTP over loopback.

On request (``--pipelines``): ``rootstream-sdl-software``, the same client
with SDL's software renderer instead of SDL's choice (OpenGL, i.e. Mesa's
llvmpipe on Xvfb), ``rootstream-x11``, the client with ``--present x11``
(Xlib + MIT-SHM, no SDL), and ``observer-floor``, the observer reading the very
display it paints, which is what the observer itself adds to every figure.

The pipelines run one after the other on fresh displays, alternating which goes
first, ``REPEATS`` times; the table gives the median of the repeats and their
range.  Targets (issue "Stream a screen end to end"): rootstream's p50 at most
0.7x GStreamer's at 1280x720@60, and its p99 at most 1.5x its own p50.

Run ``python bench/bench_glass.py [--repeats 3] [--seconds 10]`` for the
table, or ``python -m pytest bench/bench_glass.py -s`` (one round; set
``ROOTSTREAM_BENCH_REPEATS=3`` for more).  Both fail when a pipeline shows no
frames or the markers cannot be read on B.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import (
    CpuWindow,
    Spawned,
    XvfbDisplay,
    free_udp_port,
    last_report,
    machine_lines,
    spread,
)
from gstreamer import GStreamerStream
from gstreamer import missing as gstreamer_missing
from observer import Observer

SIZE = (1280, 720)
FPS = 60
BITRATE_MBPS = 10
WARMUP_S = 2.0
SECONDS = 10.0
REPEATS = 3
# Below this many frames seen on B in the measured window, the pipeline is broken,
# not slow: even a host dropping every other frame shows ~300 in 10 s.
MIN_SEEN = 30


@dataclass
class GlassRun:
    pipeline: str  # "rootstream" or "gstreamer"
    latency_ms: dict[str, float]  # p50/p95/p99 off the observer
    seen: int
    painted: int
    unreadable: int
    processes: dict[str, dict[str, float]]  # name -> cpu, peak_rss_mb
    extra: dict = field(default_factory=dict)


# rootstream's client with SDL's software renderer instead of SDL's choice (OpenGL,
# which on Xvfb is Mesa's llvmpipe): measured on request, to see what presenting costs.
CLIENT_ENV = {"rootstream": {}, "rootstream-sdl-software": {"SDL_RENDER_DRIVER": "software"},
              "rootstream-x11": {}}
# The client's --present per variant; SDL's x11 driver unless named here.
CLIENT_PRESENTER = {"rootstream-x11": "x11"}
# The observer reading the very display it paints: what it adds to every figure.
FLOOR = "observer-floor"
PIPELINES = ("rootstream", "gstreamer")
KNOWN = (*CLIENT_ENV, "gstreamer", FLOOR)


def _rootstream_sides(a: XvfbDisplay, b: XvfbDisplay, port: int, log_dir: Path,
                      client_env: dict[str, str], presenter: str = "sdl"):
    python = [sys.executable, "-m", "rootstream_cli"]
    host = Spawned("rootstream-host", python + [
        "host", "--source", "x11", "--display", a.display, "--encoder", "x264",
        "--fps", str(FPS), "--bitrate", str(BITRATE_MBPS), "--bind", "127.0.0.1",
        "--port", str(port), "--stats-interval", "1",
        "--stats-json", str(log_dir / "host.jsonl"), "--sessions", "1"],
        log_dir, env=a.env())
    try:
        host.wait_for("listening on")
        client = Spawned("rootstream-client", python + [
            "connect", f"127.0.0.1:{port}", "--present", presenter, "--stats-interval", "1",
            "--stats-json", str(log_dir / "client.jsonl"),
            # The client's own "glass" ring: the painter's stamp in the marker
            # to presented, which splits the observer's figure at the present.
            "--same-clock"],
            log_dir, env=b.env(SDL_VIDEODRIVER="x11", **client_env))
        client.wait_for(f"showing with {presenter}")
    except BaseException:
        host.stop()
        raise
    return host, client


def run_once(pipeline: str, log_dir: Path, *, seconds: float = SECONDS,
             warmup: float = WARMUP_S) -> GlassRun:
    """One measured stream on two fresh displays; raises if the pipeline shows nothing."""
    log_dir.mkdir(parents=True, exist_ok=True)
    width, height = SIZE
    with XvfbDisplay(width, height) as a, XvfbDisplay(width, height) as b, \
            Observer(a.display, a.display if pipeline == FLOOR else b.display,
                     width, height, FPS) as observer:
        port = free_udp_port()
        if pipeline == FLOOR:
            pids, stop, alive = {}, [], []
        elif pipeline in CLIENT_ENV:
            host, client = _rootstream_sides(a, b, port, log_dir, CLIENT_ENV[pipeline],
                                             CLIENT_PRESENTER.get(pipeline, "sdl"))
            pids = {"host": host.pid, "client": client.pid}
            stop = [client.stop, host.stop]
            alive = [host, client]
        else:
            stream = GStreamerStream(a.display, b.display, port, log_dir, fps=FPS,
                                     bitrate_kbps=BITRATE_MBPS * 1000)
            pids = stream.pids()
            stop = [stream.stop]
            alive = [stream.sender, stream.receiver]
        try:
            time.sleep(warmup)
            observer.measure_from_now()
            cpu = CpuWindow(pids)
            time.sleep(seconds)
            processes = cpu.finish()
            result = observer.result()
            for side in alive:
                if side.proc.poll() is not None:
                    raise RuntimeError(f"{side.name} died during the run:\n{side.log()}")
        finally:
            for halt in stop:
                halt()
    if result.seen < MIN_SEEN:
        raise RuntimeError(
            f"{pipeline}: only {result.seen} of {result.painted} painted frames were read on "
            f"the client's display ({result.unreadable} unreadable grabs); logs in {log_dir}")
    extra = {"paint_ms_p50": result.as_dict()["paint_ms_p50"]}
    if pipeline in CLIENT_ENV:
        extra["rings"] = _own_figures(log_dir)
    return GlassRun(pipeline, result.percentiles(), result.seen, result.painted,
                    result.unreadable, processes, extra)


def _own_figures(log_dir: Path) -> dict[str, float]:
    """rootstream's own p50 per stage in this run: not the measurement, where it went."""
    host = last_report(log_dir / "host.jsonl", "host")["latency_ms"]
    client = last_report(log_dir / "client.jsonl", "client")["latency_ms"]
    figures = {f"host {stage}": host[stage]["p50"] for stage in host}
    figures.update({f"client {stage}": client[stage]["p50"] for stage in client
                    if stage != "host"})
    return figures


def measure(log_root: Path, *, repeats: int = REPEATS, seconds: float = SECONDS,
            pipelines: tuple[str, ...] = PIPELINES) -> list[GlassRun]:
    """``repeats`` rounds, each pipeline once per round, alternating which goes first."""
    runs = []
    for round_number in range(repeats):
        order = pipelines if round_number % 2 == 0 else tuple(reversed(pipelines))
        for pipeline in order:
            runs.append(run_once(pipeline, log_root / f"{round_number}-{pipeline}",
                                 seconds=seconds))
    return runs


def table(runs: list[GlassRun]) -> list[str]:
    lines = ["", f"glass to glass, {SIZE[0]}x{SIZE[1]}@{FPS}, x264 {BITRATE_MBPS} Mbit/s, "
                 f"observer-measured (ms; median of {_rounds(runs)} runs, range in brackets)"]
    by_pipeline: dict[str, list[GlassRun]] = {}
    for run in runs:
        by_pipeline.setdefault(run.pipeline, []).append(run)
    for pipeline, group in by_pipeline.items():
        cells = "  ".join(f"{p} {spread(r.latency_ms[p] for r in group)}"
                          for p in ("p50", "p95", "p99"))
        seen = sum(r.seen for r in group) / max(1, sum(r.painted for r in group))
        lines.append(f"  {pipeline:10} {cells}  seen {seen:.0%} of painted frames")
        for name in sorted(group[0].processes):
            cpu = spread(r.processes[name]["cpu"] for r in group)
            rss = spread(r.processes[name]["peak_rss_mb"] for r in group)
            lines.append(f"  {'':10} {name:13} cpu {cpu} s/s  peak RSS {rss} MB")
        rings = [r.extra["rings"] for r in group if "rings" in r.extra]
        if rings:
            own = "  ".join(f"{stage} {statistics.median(r[stage] for r in rings):.1f}"
                            for stage in rings[0] if all(stage in r for r in rings))
            lines.append(f"  {'':10} its own rings, p50 ms: {own}")
    theirs = by_pipeline.get("gstreamer")
    for name in CLIENT_ENV:
        ours = by_pipeline.get(name)
        if not ours:
            continue
        ratios = [r.latency_ms["p99"] / r.latency_ms["p50"] for r in ours]
        lines.append(f"  {name} p99/p50: {spread(ratios)}  (target <= 1.5)")
        if theirs:
            paired = [o.latency_ms["p50"] / t.latency_ms["p50"]
                      for o, t in zip(ours, theirs, strict=False)]
            of_medians = (statistics.median(o.latency_ms["p50"] for o in ours)
                          / statistics.median(t.latency_ms["p50"] for t in theirs))
            lines.append(f"  {name} p50 / GStreamer p50: {spread(paired)} per round, "
                         f"{of_medians:.2f} of the medians  (target <= 0.7)")
    paint = [r.extra["paint_ms_p50"] for r in runs if r.extra.get("paint_ms_p50") is not None]
    if paint:
        lines.append(f"  observer: painting a frame took {spread(paint)} ms (p50)")
    return lines + ["  " + line for line in machine_lines()]


def _rounds(runs: list[GlassRun]) -> int:
    return max((sum(1 for r in runs if r.pipeline == p) for p in {r.pipeline for r in runs}),
               default=0)


def _skip_reason() -> str:
    if shutil.which("Xvfb") is None:
        return "Xvfb missing (apt-get install xvfb)"
    return gstreamer_missing()


def test_glass_to_glass_720p60(tmp_path, request):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    repeats = max(1, int(os.environ.get("ROOTSTREAM_BENCH_REPEATS", "1")))
    runs = measure(tmp_path, repeats=repeats)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n".join(table(runs)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Glass-to-glass latency: rootstream vs "
                                                 "GStreamer on Xvfb, read off the pixels.")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--pipelines", default=",".join(PIPELINES),
                        help=f"comma-separated, from: {', '.join(KNOWN)}")
    parser.add_argument("--logs", default=None, help="keep the processes' logs here")
    args = parser.parse_args(argv)
    pipelines = tuple(args.pipelines.split(","))
    unknown = set(pipelines) - set(KNOWN)
    if unknown:
        parser.error(f"unknown pipelines: {', '.join(sorted(unknown))}")
    if shutil.which("Xvfb") is None:
        print("bench_glass: Xvfb missing (apt-get install xvfb)", file=sys.stderr)
        return 2
    if "gstreamer" in pipelines and gstreamer_missing():
        print(f"bench_glass: {gstreamer_missing()}; measuring rootstream alone",
              file=sys.stderr)
        pipelines = tuple(p for p in pipelines if p != "gstreamer")
    with tempfile.TemporaryDirectory(prefix="bench-glass-") as scratch:
        root = Path(args.logs) if args.logs else Path(scratch)
        runs = measure(root, repeats=args.repeats, seconds=args.seconds, pipelines=pipelines)
    print("\n".join(table(runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
