"""Latency rings, percentiles and the one-line report both sides print.

Each stage's latency is a difference of two monotonic stamps on a frame
(rootstream.frame), recorded here in nanoseconds into a fixed ring so memory
never grows; percentiles are computed only when a report is made.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

PERCENTILES = (50, 95, 99)


class LatencyRing:
    """The last ``size`` samples of one latency, in nanoseconds."""

    def __init__(self, size: int = 1024):
        self._values = np.zeros(size, dtype=np.int64)
        self._count = 0

    def add(self, ns: int) -> None:
        self._values[self._count % len(self._values)] = ns
        self._count += 1

    def __len__(self) -> int:
        return min(self._count, len(self._values))

    @property
    def total(self) -> int:
        return self._count

    def percentiles_ms(self, ps: Iterable[int] = PERCENTILES) -> dict[str, float]:
        n = len(self)
        if n == 0:
            return {}
        # np.percentile's "linear" rule, from one sort: np.percentile itself
        # costs ~150 us a call, and a report holds the GIL over every ring
        # while the capture and encode threads wait for it.
        ordered = np.sort(self._values[:n])
        result = {}
        for p in ps:
            rank = p / 100 * (n - 1)
            low = int(rank)
            high = min(low + 1, n - 1)
            value = ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
            result[f"p{p}"] = round(float(value) / 1e6, 3)
        return result

    def reset(self) -> None:
        self._count = 0


@dataclass
class StatsWindow:
    """Counters over one report interval, plus rings over the recent past."""

    side: str
    stages: tuple[str, ...]
    rings: dict[str, LatencyRing] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    window_start_ns: int = field(default_factory=time.monotonic_ns)
    frames: int = 0
    bytes: int = 0

    def __post_init__(self) -> None:
        for stage in self.stages:
            self.rings.setdefault(stage, LatencyRing())


class StatsCollector:
    """Thread-safe per-side statistics with a periodic one-line summary.

    Stages record with ``record(stage, ns)``; frames and bytes with
    ``frame(nbytes)``; anything else with ``count(name)``.  ``report()``
    returns a dict (the JSON form) and resets the interval counters, not the
    latency rings, which always hold the last 1024 samples.
    """

    def __init__(self, side: str, stages: Iterable[str]):
        self._lock = threading.Lock()
        self.window = StatsWindow(side, tuple(stages))
        self.totals: dict[str, int] = {}

    def record(self, stage: str, ns: int) -> None:
        with self._lock:
            ring = self.window.rings.get(stage)
            if ring is None:
                ring = self.window.rings[stage] = LatencyRing()
            ring.add(ns)

    def frame(self, nbytes: int) -> None:
        with self._lock:
            self.window.frames += 1
            self.window.bytes += nbytes

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.window.counters[name] = self.window.counters.get(name, 0) + n
            self.totals[name] = self.totals.get(name, 0) + n

    def new_session(self) -> None:
        """Empty the latency rings, so a new client's percentiles are its own
        and not the last client's (the totals keep counting)."""
        with self._lock:
            for ring in self.window.rings.values():
                ring.reset()

    def set_total(self, name: str, value: int) -> None:
        """Mirror a counter kept elsewhere (e.g. a mailbox's drops)."""
        with self._lock:
            self.totals[name] = value

    def report(self, now_ns: int | None = None) -> dict:
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        with self._lock:
            w = self.window
            seconds = max((now_ns - w.window_start_ns) / 1e9, 1e-9)
            result = {
                "side": w.side,
                "time": time.time(),
                "interval_s": round(seconds, 3),
                "fps": round(w.frames / seconds, 2),
                "mbps": round(w.bytes * 8 / seconds / 1e6, 3),
                "counters": dict(w.counters),
                "totals": dict(self.totals),
                "latency_ms": {name: ring.percentiles_ms() for name, ring in w.rings.items()
                               if len(ring)},
            }
            w.frames = w.bytes = 0
            w.counters = {}
            w.window_start_ns = now_ns
            return result


def format_report(report: dict) -> str:
    """The one-line summary: rate, bitrate, drops, then p50/p95/p99 per stage."""
    parts = [f"{report['side']}: {report['fps']:5.1f} fps {report['mbps']:6.2f} Mbit/s"]
    drops = {k: v for k, v in report["totals"].items() if v}
    if drops:
        parts.append(" ".join(f"{k}={v}" for k, v in sorted(drops.items())))
    for stage, p in report["latency_ms"].items():
        if p:
            parts.append(f"{stage} {p['p50']:.1f}/{p['p95']:.1f}/{p['p99']:.1f}")
    return " | ".join(parts) + "  (ms p50/p95/p99)"


class JsonStatsWriter:
    """Appends one JSON object per report to a file (JSON lines), for scripts."""

    def __init__(self, path: str):
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, report: dict) -> None:
        self._file.write(json.dumps(report, sort_keys=True) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
