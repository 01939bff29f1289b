"""Shared by the benchmark modules: median/p99 per case and a printed summary.

A module that wants a summary defines ``summary_lines(results)`` and records
each case with ``bench_summary.record(benchmark, *key)``; at the end of the
module the lines are written past pytest's output capture, since the figures
are the point of the run.

Below that, plain helpers for the end-to-end benchmarks (real Xvfb servers,
processes, /proc figures, ``--stats-json`` reports); plain functions rather
than fixtures so ``python bench/bench_glass.py`` can use them without pytest.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import subprocess
import time
from pathlib import Path

import pytest


class BenchSummary:
    """Median and p99 seconds per recorded case, keyed as the module likes."""

    def __init__(self):
        self.results: dict[tuple, tuple[float, float]] = {}

    def record(self, benchmark, *key) -> tuple[float, float]:
        timings = sorted(benchmark.stats.stats.data)
        median = benchmark.stats.stats.median
        p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
        self.results[key] = (median, p99)
        benchmark.extra_info["median_us"] = round(median * 1e6, 1)
        benchmark.extra_info["p99_us"] = round(p99 * 1e6, 1)
        return median, p99


@pytest.fixture(scope="module")
def bench_summary(request):
    summary = BenchSummary()
    yield summary
    write_lines = getattr(request.module, "summary_lines", None)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if write_lines is None or reporter is None or capture is None or not summary.results:
        return
    with capture.global_and_fixture_disabled():
        for line in write_lines(summary.results):
            reporter.write_line(line)


# -- helpers for the end-to-end benchmarks (bench_e2e.py, bench_glass.py) -------------------


class XvfbDisplay:
    """A real Xvfb server of exactly ``width`` x ``height`` on a display number it picks.

    ``-displayfd`` makes Xvfb choose a free number and tell us once it listens, so
    parallel runs by other people on the machine never collide on a number.
    """

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        ready, announce = os.pipe()
        self.proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(announce), "-screen", "0", f"{width}x{height}x24",
             "-nolisten", "tcp", "-noreset", "+extension", "DAMAGE", "+extension", "MIT-SHM"],
            pass_fds=(announce,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(announce)
        with os.fdopen(ready) as pipe:
            number = pipe.readline().strip()
        if not number:
            self.close()
            raise RuntimeError("Xvfb did not start")
        self.display = f":{number}"

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "DISPLAY": self.display, **extra}

    def close(self) -> None:
        stop_process(self.proc, 5)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def stop_process(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM one process we started, SIGKILL it if it is still there after ``timeout``."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_udp_port() -> int:
    """A UDP port on loopback that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Spawned:
    """A subprocess with its output in a log file, stopped politely on ``stop()``."""

    def __init__(self, name: str, command: list[str], log_dir, env: dict | None = None):
        self.name = name
        self.log_path = Path(log_dir) / f"{name}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env or dict(os.environ))
        self.pid = self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} never printed {text!r}:\n{self.log()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM, then wait (SIGKILL after ``timeout``); returns the exit code."""
        stop_process(self.proc, timeout)
        self._log.close()
        return self.proc.returncode


class ProcStat:
    """CPU seconds and peak RSS of one live process, from /proc (no psutil needed)."""

    def __init__(self, pid: int):
        self.pid = pid
        self._tick = os.sysconf("SC_CLK_TCK")

    def cpu_seconds(self) -> float:
        """user + system time so far; fields 14 and 15 of /proc/PID/stat, after the name."""
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self._tick

    def peak_rss_mb(self) -> float:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmHWM for process {self.pid}")


class CpuWindow:
    """CPU use of some processes over a wall-clock window: user+sys seconds per second."""

    def __init__(self, pids: dict[str, int]):
        self.stats = {name: ProcStat(pid) for name, pid in pids.items()}
        self._start = {name: s.cpu_seconds() for name, s in self.stats.items()}
        self._t0 = time.monotonic()

    def finish(self) -> dict[str, dict[str, float]]:
        """Per process: cpu (seconds per second of streaming) and peak RSS in MB."""
        seconds = time.monotonic() - self._t0
        return {name: {"cpu": round((s.cpu_seconds() - self._start[name]) / seconds, 3),
                       "peak_rss_mb": round(s.peak_rss_mb(), 1)}
                for name, s in self.stats.items()}


def last_report(path, stage: str) -> dict:
    """The last JSON report in a ``--stats-json`` file whose rings hold ``stage``."""
    found = None
    with open(path) as lines:
        for line in lines:
            report = json.loads(line)
            if report.get("latency_ms", {}).get(stage):
                found = report
    if found is None:
        raise RuntimeError(f"{path} has no report with a {stage!r} latency")
    return found


def spread(values) -> str:
    """``median (min-max)`` of a few repeats, for the tables."""
    values = list(values)
    if not values:
        return "-"
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def machine_lines() -> list[str]:
    """What the figures were measured on: CPU model and count, load average."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return [f"machine: {model}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"load average {load}"]
