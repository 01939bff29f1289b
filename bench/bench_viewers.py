"""Many viewers (`host --viewers N`): what each costs, joining, and bursty loss.

Three measurements, on loopback, each row with the load average at its end
(the machine is shared: read every figure beside it):

- **fan-out**: a real encrypted ``rootstream host`` (test pattern 1280x720 at
  60 fps, x264 at 10 Mbit/s) with 1, 2, 4 and 8 viewers.  The first viewer is
  a real client in this process (decoding, reading the pattern's embedded
  capture time off each picture: glass-to-glass on one clock); viewers 2..N
  are sessions of ONE ``bench/viewer_sink.py`` process that do the handshake
  and open every datagram but decode nothing, so the figure is the fan-out's
  cost, not N decoders on two cores.  Why the sinks receive at SCHED_IDLE,
  and why that is honest: they stand for viewers on OTHER machines, whose
  receiving costs this box (and so the first viewer's decoder and presenter)
  nothing.  Everything the host does per viewer - sealing, pacing, the send
  threads, ``sendto`` into each socket, the loss reports and keepalives it
  handles - is still done in the host process at normal priority and counted
  in its CPU, RSS and latency rings; only the sinks' own reading and opening
  waits for idle CPU (their keepalives go at normal priority, so the host
  never drops one as silent).  ``--sinks-normal`` runs each sink as its own
  process at normal priority, the old set-up, to show how much of the growth
  was the sinks taking the first viewer's CPU.  Host CPU (% of one core, /proc) and peak RSS over
  the window when all N watch; the first viewer's glass p50/p99 (whole
  milliseconds: the marker's resolution), its path p50 in microseconds (the
  host's capture -> last datagram ring plus the client's first datagram ->
  shown ring), the host's part of it alone (``host`` ring: capture -> last
  datagram to the first viewer) and its ``send`` ring (encoded -> last
  datagram to the first viewer) over the same window.  Targets: each extra
  viewer <= 5 % of a core and <= 10 MB; the first viewer's p50 grows <= 10 %
  from 1 to 8.
- **join**: a sink watches; a real client joins ``JOINS`` times, each time
  timed from starting (handshake included) to its first picture, with
  keyframes (the default: the host sends an IDR on a join) and with intra
  refresh (``--refresh-ms``: no IDR; the joiner waits for a sweep).  Also the
  IDRs the host sent meanwhile, i.e. what the sink received.  Target: the
  first picture within 300 ms.
- **cost**: what refresh costs a lone viewer, in this process: x264 encode
  time, mean and largest frame, and PSNR of the decoded luma at the same
  bitrate, with one recovery mid-way (an IDR, or nothing with refresh).
- **bursty loss**: one viewer through the lossy relay with Gilbert-Elliott
  loss (1 % chance to enter a burst, mean burst 8 datagrams) both ways: with
  repair (the default: lost fragments asked for again), keyframes only
  (``--no-repair``), and refresh recovery; ``--repeats`` runs of each, in
  turn; run by bench/bench_loss.py's case runner (shown/sent, longest freeze
  after warm-up, intact pictures only, frames repaired, fragments sent again
  as a share of the datagrams, keyframes received).
  Target: >= 95 % shown, no freeze over 150 ms.

``python bench/bench_viewers.py [--seconds 8] [--part fanout|join|cost|loss] [--repeats 3]
[--sinks-normal]``
prints the tables; ``python -m pytest bench/bench_viewers.py -s`` the same.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import bench_loss
import numpy as np
from conftest import CpuWindow, Spawned, free_udp_port, last_report, machine_lines
from glass_trace import read_trace

from rootstream.capture.pattern import PatternCapture
from rootstream.client import Client, ClientOptions
from rootstream.convert import NV12Converter
from rootstream.decode import open_decoder
from rootstream.encode import open_encoder
from rootstream.host.video import refresh_frames
from rootstream.testing.impair import GilbertElliott, Impairment

SIZE, FPS, BITRATE_MBPS = "1280x720", 60, 10
SECONDS = 8.0
COUNTS = (1, 2, 4, 8)
JOINS = 5
REFRESH_MS = 100
PARTS = ["fanout", "join", "cost", "loss"]
SINK = Path(__file__).with_name("viewer_sink.py")
BURSTY = Impairment(burst=GilbertElliott(p_good_to_bad=0.01, p_bad_to_good=1 / 8))


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _host(log_dir: Path, *extra: str) -> Spawned:
    port = free_udp_port()
    host = Spawned(f"host-{port}", [
        sys.executable, "-m", "rootstream_cli", "host", "--bind", "127.0.0.1", "--port",
        str(port), "--source", "test", "--size", SIZE, "--fps", str(FPS), "--bitrate",
        str(BITRATE_MBPS), "--audio", "none", "--input", "none", "--stats-interval", "1",
        "--stats-json", str(log_dir / f"host-{port}.json"), *extra], log_dir)
    host.port = port
    host.json = log_dir / f"host-{port}.json"
    host.wait_for("listening on")
    return host


def _sink(port: int, seconds: float, count: int = 1,
          priority: str = "idle") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SINK), "127.0.0.1", str(port), str(seconds),
                             "--count", str(count), "--priority", priority],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _sinks(port: int, seconds: float, count: int, normal: bool) -> list[subprocess.Popen]:
    """Viewers 2..N: one process at SCHED_IDLE (they stand for other machines),
    or with ``normal`` one process each at normal priority (the old figure)."""
    if count == 0:
        return []
    if normal:
        return [_sink(port, seconds, 1, "normal") for _ in range(count)]
    return [_sink(port, seconds, count, "idle")]


def _finish(sinks: list[subprocess.Popen]) -> list[dict]:
    results = []
    for sink in sinks:
        out, err = sink.communicate(timeout=60)
        if sink.returncode != 0:
            raise RuntimeError(f"a sink failed: {err}")
        results += json.loads(out.strip().splitlines()[-1])
    return results


def _client(port: int, seconds: float, frame_trace: Path | None = None) -> Client:
    return Client(ClientOptions(host=("127.0.0.1", port), present="null", seconds=seconds,
                                stats_interval=3600, same_clock=True, audio=False,
                                input=False, frame_trace=str(frame_trace) if frame_trace
                                else None),
                  log=lambda line: None)


TRACE_SPANS = ("convert", "mailbox", "encode", "send", "to client", "decode", "present")


def trace_spans(client_trace: Path, host_trace: Path, since_ns: int) -> dict[str, float]:
    """The first viewer's frames shown after ``since_ns``, joined with the host's
    trace by frame id: each span's median in ms (bench/glass_trace.py's spans,
    from the host's capture on; no observer here, so no wait or display)."""
    host = read_trace(host_trace, "frame_id")
    rows = []
    for line in read_trace(client_trace).values():
        h = host.get(line["frame_id"])
        if h is None or line["presented_ns"] < since_ns:
            continue
        rows.append({"convert": h["converted_ns"] - h["captured_ns"],
                     "mailbox": h["taken_ns"] - h["converted_ns"],
                     "encode": h["encoded_ns"] - h["taken_ns"],
                     "send": h["sent_ns"] - h["encoded_ns"],
                     "to client": line["assembled_ns"] - h["sent_ns"],
                     "decode": line["decoded_ns"] - line["assembled_ns"],
                     "present": line["presented_ns"] - line["decoded_ns"]})
    if not rows:
        return {}
    return {span: statistics.median(r[span] for r in rows) / 1e6 for span in TRACE_SPANS}


def fanout_case(viewers: int, seconds: float, log_dir: Path,
                sinks_normal: bool = False, trace: bool = False) -> dict:
    traces = (log_dir / f"client-{time.monotonic_ns()}.trace",
              log_dir / f"host-{time.monotonic_ns()}.trace") if trace else None
    host = _host(log_dir, "--viewers", str(viewers),
                 *(("--frame-trace", str(traces[1])) if traces else ()))
    try:
        client = _client(host.port, seconds + 4, traces[0] if traces else None)
        runner = threading.Thread(target=client.run)
        runner.start()
        host.wait_for("connected")
        sinks = _sinks(host.port, seconds + 1.5, viewers - 1, sinks_normal)
        if viewers > 1:
            host.wait_for(f"{viewers} watching")
        time.sleep(1.0)  # the joins' keyframes and the sinks' start-up: not measured
        client.stats.window.rings["glass"].reset()
        client.stats.window.rings["client"].reset()
        window = CpuWindow({"host": host.pid})
        since_ns = time.monotonic_ns()
        time.sleep(seconds)
        figures = window.finish()["host"]
        glass = client.stats.window.rings["glass"].percentiles_ms((50, 99))
        client_ms = client.stats.window.rings["client"].percentiles_ms((50,))
        load = _load()
        sunk = _finish(sinks)
        runner.join()
        host_rings = last_report(host.json, "send")["latency_ms"]
    finally:
        host.stop()
    result = client.result
    spans = trace_spans(*traces, since_ns) if traces else {}
    return {**{f"span {name}": value for name, value in spans.items()},
            "viewers": viewers, "cpu_percent": figures["cpu"] * 100,
            "rss_mb": figures["peak_rss_mb"], "p50": glass.get("p50", 0.0),
            "p99": glass.get("p99", 0.0), "send_p50": host_rings["send"].get("p50", 0.0),
            # The same path in microseconds: capture -> last datagram to the first
            # viewer (host ring) plus first datagram -> shown (client ring).
            "path_p50": host_rings["host"].get("p50", 0.0) + client_ms.get("p50", 0.0),
            "host_p50": host_rings["host"].get("p50", 0.0),
            "shown": result.frames_presented,
            "sent": result.frames_received + result.frames_lost,
            "sink_opened": min((s["opened"] for s in sunk), default=0), "load": load}


def join_case(refresh_ms: int, joins: int, log_dir: Path) -> dict:
    extra = ("--refresh-ms", str(refresh_ms)) if refresh_ms else ()
    host = _host(log_dir, "--viewers", "2", *extra)
    waits, shown = [], []
    try:
        watcher = _sink(host.port, 4.0 * joins + 6)
        host.wait_for("1 watching")
        time.sleep(1.0)
        before = _keyframes_sent(host)
        for _ in range(joins):
            client = _client(host.port, 2.0)
            started = time.monotonic_ns()
            client.run()
            if client.result.first_picture_ns is not None:
                waits.append((client.result.first_picture_ns - started) / 1e6)
            shown.append(client.result.frames_presented)
            time.sleep(1.5)  # the host forgets the joiner before the next one
        after = _keyframes_sent(host)
        load = _load()
        watcher.terminate()
        watcher.communicate(timeout=10)
    finally:
        host.stop()
    return {"mode": f"refresh {refresh_ms} ms" if refresh_ms else "keyframes",
            "joins": joins, "pictures": len(waits), "median_ms": statistics.median(waits),
            "max_ms": max(waits), "idr_to_watcher": after - before, "load": load}


def _keyframes_sent(host: Spawned) -> int:
    time.sleep(1.1)  # one stats interval: the report after the last change
    reports = [json.loads(line) for line in host.json.read_text().splitlines() if line.strip()]
    return max((r["totals"].get("keyframes_sent", 0) for r in reports), default=0)


LOSS_CASES = {
    "bursty-GE-1%-8": (),  # repair (the default)
    "bursty-GE-1%-8-no-repair": ("--no-repair",),  # keyframes only, as before repair
    "bursty-GE-1%-8-refresh": ("--refresh-ms", str(REFRESH_MS)),  # refresh, and repair
}


def loss_cases(seconds: float, log_dir: Path,
               repeats: int = 1) -> list[tuple[bench_loss.Figures, str]]:
    """Each case ``repeats`` times, taken in turn (so the load is shared alike)."""
    for name, extra in LOSS_CASES.items():
        bench_loss.CASES[name] = (BURSTY, BITRATE_MBPS, extra)
    return [(bench_loss.run_case(name, seconds, log_dir), _load())
            for _ in range(repeats) for name in LOSS_CASES]


def cost_case(refresh_ms: int, frames: int = 240) -> dict:
    """What refresh costs a lone viewer, in-process: x264 on the 720p test pattern at
    10 Mbit/s, one recovery in the middle (an IDR, or nothing: the sweeps go on)."""
    width, height = (int(v) for v in SIZE.split("x"))
    capture = PatternCapture(width=width, height=height, fps=FPS)
    converter = NV12Converter(width, height, capture.pixel_format, pool_size=4)
    decoder = open_decoder("software")
    times, sizes, psnr = [], [], []
    with open_encoder("x264", width=width, height=height, fps=FPS,
                      bitrate=BITRATE_MBPS * 1_000_000,
                      refresh=refresh_frames(FPS, refresh_ms)) as encoder:
        for index in range(frames):
            source = converter.convert(capture.grab(timeout=1, force=True))
            start = time.perf_counter()
            (unit,) = encoder.encode(source, force_keyframe=not refresh_ms and
                                     index == frames // 2)
            times.append((time.perf_counter() - start) * 1000)
            sizes.append(len(unit.data))
            (picture,) = decoder.decode(unit.data)
            original = source.to_ndarray()[:height].astype(np.float64)
            error = np.mean((picture.to_ndarray()[:height].astype(np.float64) - original) ** 2)
            psnr.append(10 * np.log10(255 ** 2 / max(error, 1e-9)))
    steady = sizes[FPS:]  # past the first IDR
    return {"mode": f"refresh {refresh_ms} ms" if refresh_ms else "keyframes",
            "encode_p50": statistics.median(times),
            "encode_p99": sorted(times)[int(len(times) * 0.99)],
            "mean_kb": statistics.mean(steady) / 1000, "largest_kb": max(steady) / 1000,
            "psnr": statistics.mean(psnr[FPS:]), "load": _load()}


def cost_table(rows: list[dict]) -> list[str]:
    lines = [f"{'recovery':<16} {'encode p50':>10} {'p99 ms':>7} {'frame KB':>9} "
             f"{'largest KB':>10} {'PSNR Y dB':>9} load average"]
    for r in rows:
        lines.append(f"{r['mode']:<16} {r['encode_p50']:>10.2f} {r['encode_p99']:>7.2f} "
                     f"{r['mean_kb']:>9.1f} {r['largest_kb']:>10.1f} {r['psnr']:>9.2f} "
                     f"{r['load']}")
    return lines


def fanout_table(rows: list[dict]) -> list[str]:
    base = rows[0]
    lines = [f"{'viewers':>7} {'host CPU %':>10} {'/extra':>7} {'RSS MB':>7} {'/extra':>7} "
             f"{'p50 ms':>7} {'p99 ms':>7} {'p50/1':>6} {'path p50':>8} {'/1':>5} {'host p50':>8} "
             f"{'send p50':>8} "
             f"{'shown/sent':>11} {'path p50 range':>14} "
             f"load average"]
    for r in rows:
        extra = r["viewers"] - 1
        per_cpu = (r["cpu_percent"] - base["cpu_percent"]) / extra if extra else 0.0
        per_rss = (r["rss_mb"] - base["rss_mb"]) / extra if extra else 0.0
        ratio = r["p50"] / base["p50"] if base["p50"] else 0.0
        path_ratio = r["path_p50"] / base["path_p50"] if base["path_p50"] else 0.0
        lines.append(f"{r['viewers']:>7} {r['cpu_percent']:>10.1f} {per_cpu:>7.1f} "
                     f"{r['rss_mb']:>7.1f} {per_rss:>7.1f} {r['p50']:>7.1f} {r['p99']:>7.1f} "
                     f"{ratio:>6.2f} {r['path_p50']:>8.2f} {path_ratio:>5.2f} "
                     f"{r['host_p50']:>8.2f} {r['send_p50']:>8.2f} "
                     f"{r['shown']:>5.0f}/{r['sent']:<5.0f} {_range(r, 'path_p50'):>14} "
                     f"{r['load']}")
    return lines


def join_table(rows: list[dict]) -> list[str]:
    lines = [f"{'recovery':<16} {'first picture: median':>22} {'max':>6} {'joins':>6} "
             f"{'IDRs to the watcher':>20} load average"]
    for r in rows:
        lines.append(f"{r['mode']:<16} {r['median_ms']:>19.0f} ms {r['max_ms']:>6.0f} "
                     f"{r['pictures']:>3}/{r['joins']:<2} {r['idr_to_watcher']:>20} {r['load']}")
    return lines


def loss_table(rows) -> list[str]:
    lines = bench_loss.table([figures for figures, _ in rows])
    return [lines[0] + "  load average"] + [f"{line}  {load}" for line, (_, load)
                                            in zip(lines[1:], rows, strict=True)]


def _median_row(rows: list[dict]) -> dict:
    """Medians over the rounds, with each round's p50s kept for the range."""
    merged = dict(rows[-1])
    for key, value in rows[-1].items():
        if isinstance(value, (int, float)) and key != "viewers":
            merged[key] = statistics.median(r[key] for r in rows)
    merged["rounds"] = rows
    return merged


def rounds_table(rows: list[dict]) -> list[str]:
    """Every round: glass p50/p99, path p50, host CPU, sinks' fewest datagrams
    opened, the load average at its end."""
    lines = [f"{'viewers':>7} {'round':>5} {'p50 ms':>7} {'p99 ms':>7} {'path p50':>8} "
             f"{'host p50':>8} {'host CPU %':>10} {'sink opened':>11} load average"]
    for row in rows:
        for index, r in enumerate(row["rounds"], 1):
            lines.append(f"{r['viewers']:>7} {index:>5} {r['p50']:>7.1f} {r['p99']:>7.1f} "
                         f"{r['path_p50']:>8.2f} {r['host_p50']:>8.2f} "
                         f"{r['cpu_percent']:>10.1f} {r['sink_opened']:>11} {r['load']}")
    return lines


def spans_table(rows: list[dict]) -> list[str]:
    lines = [f"{'viewers':>7} " + " ".join(f"{name:>9}" for name in TRACE_SPANS)]
    for r in rows:
        lines.append(f"{r['viewers']:>7} " + " ".join(
            f"{r.get('span ' + name, float('nan')):>9.2f}" for name in TRACE_SPANS))
    return lines


def _range(row: dict, key: str) -> str:
    values = [r[key] for r in row.get("rounds", [row])]
    return f"{min(values):.2f}-{max(values):.2f}"


def run(parts: list[str], seconds: float, repeats: int = 1,
        sinks_normal: bool = False, both: bool = False, trace: bool = False) -> list[str]:
    lines = machine_lines()
    with tempfile.TemporaryDirectory(prefix="bench-viewers-") as tmp:
        log_dir = Path(tmp)
        # One identity for the host and every viewer: this machine's, in a scratch dir.
        os.environ["XDG_CONFIG_HOME"] = str(log_dir / "config")
        if "fanout" in parts:
            modes = [False, True] if both else [sinks_normal]
            # Interleaved: each round runs every count (and with --both, each sink
            # set-up) in turn, so a change in the machine's load hits all alike.
            runs = [(normal, fanout_case(n, seconds, log_dir, normal, trace))
                    for _ in range(repeats) for n in COUNTS for normal in modes]
            for normal in modes:
                how = ("one process each, normal priority" if normal
                       else "one process, SCHED_IDLE")
                lines += ["", "fan-out, 720p60 10 Mbit/s, first viewer decoding, the rest "
                              f"sinks ({how}):"]
                rows = [_median_row([r for m, r in runs if m == normal and r["viewers"] == n])
                        for n in COUNTS]
                lines += fanout_table(rows)
                if repeats > 1:
                    lines.append(f"(medians of {repeats} runs, taken in turn; the load "
                                 "average is the last run's)")
                    lines += ["", "each round:"] + rounds_table(rows)
                if trace:
                    lines += ["", "the first viewer's frames, median ms per span (host "
                                  "--frame-trace joined with the client's by frame id):"]
                    lines += spans_table(rows)
        if "join" in parts:
            lines += ["", "a viewer joining one already watching (720p60 10 Mbit/s):"]
            lines += join_table([join_case(ms, JOINS, log_dir) for ms in (0, REFRESH_MS)])
        if "cost" in parts:
            lines += ["", "what refresh costs one viewer (x264, 720p60 10 Mbit/s, in-process; "
                          "one recovery mid-way):"]
            lines += cost_table([cost_case(ms) for ms in (0, REFRESH_MS)])
        if "loss" in parts:
            lines += ["", "bursty loss (Gilbert-Elliott 1 % entry, mean burst 8), repair vs "
                          f"keyframes only vs refresh {REFRESH_MS} ms (and repair):"]
            lines += loss_table(loss_cases(seconds, log_dir, repeats))
    return lines


def test_bench_viewers(capsys):
    lines = run(PARTS, SECONDS)
    with capsys.disabled():
        print()
        for line in lines:
            print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--part", action="append", choices=PARTS, dest="parts")
    parser.add_argument("--repeats", type=int, default=1,
                        help="fan-out runs per count, bursty-loss runs per case")
    parser.add_argument("--sinks-normal", action="store_true",
                        help="viewers 2..N as one process each at normal priority (the old "
                             "figure: they take the first viewer's CPU)")
    parser.add_argument("--both", action="store_true",
                        help="run both sink set-ups, interleaved, and print a table for each")
    parser.add_argument("--frame-trace", action="store_true",
                        help="trace the first viewer's frames on host and client and print "
                             "each span's median (where a growth goes)")
    args = parser.parse_args()
    for line in run(args.parts or PARTS, args.seconds, args.repeats, args.sinks_normal,
                    args.both, args.frame_trace):
        print(line, flush=True)


if __name__ == "__main__":
    main()
