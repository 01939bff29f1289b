"""What bench/soak.py measures of a running process, and how it turns samples into slopes.

A sample is read from /proc (resident memory, open descriptors, threads)
and from the process's own ``--stats-json`` file (the totals of its last
report).  A slope is an ordinary least-squares line through the samples
after the warm-up, given per hour with its 95 % confidence interval, so a
leak reads as "+3.1 MB/h (2.8 to 3.4)" and noise as an interval around 0.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

Z_975 = 1.959964  # the normal distribution's 97.5th percentile


def proc_sample(pid: int) -> dict | None:
    """RSS (kB), open file descriptors and threads of ``pid``; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    if fields.get("State", "").strip().startswith("Z"):
        return None
    return {"rss_kb": int(fields["VmRSS"].split()[0]), "fds": fds,
            "threads": int(fields["Threads"])}


def last_totals(path: str) -> dict:
    """The ``totals`` of the last complete report in a ``--stats-json`` file."""
    try:
        with open(path, "rb") as stats:
            stats.seek(0, os.SEEK_END)
            stats.seek(max(0, stats.tell() - 65536))
            lines = stats.read().splitlines()
    except FileNotFoundError:
        return {}
    for line in reversed(lines):
        try:
            report = json.loads(line)
        except ValueError:
            continue  # the first, cut line of the tail, or one being written
        return {k: v for k, v in report.get("totals", {}).items()
                if isinstance(v, (int, float))}
    return {}


def t_975(df: int) -> float:
    """Student's t 97.5th percentile (Cornish-Fisher expansion; within 0.3 % for df >= 3)."""
    if df <= 0:
        return math.inf
    z = Z_975
    g1 = (z ** 3 + z) / 4
    g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96
    g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384
    return z + g1 / df + g2 / df ** 2 + g3 / df ** 3


@dataclass(frozen=True)
class Slope:
    per_hour: float
    low: float  # 95 % confidence interval of per_hour
    high: float
    samples: int

    def __str__(self) -> str:
        return (f"{self.per_hour:+.3g}/h (95% CI {self.low:+.3g} to {self.high:+.3g}, "
                f"n={self.samples})")


def fit(times_s: list[float], values: list[float]) -> Slope | None:
    """Least-squares slope of ``values`` over ``times_s``, per hour, with its 95 % CI."""
    n = len(times_s)
    if n < 3:
        return None
    mean_t, mean_v = sum(times_s) / n, sum(values) / n
    stt = sum((t - mean_t) ** 2 for t in times_s)
    if stt == 0:
        return None
    pairs = list(zip(times_s, values, strict=True))
    slope = sum((t - mean_t) * (v - mean_v) for t, v in pairs) / stt
    intercept = mean_v - slope * mean_t
    residual = sum((v - intercept - slope * t) ** 2 for t, v in pairs)
    error = math.sqrt(residual / (n - 2) / stt)
    half = t_975(n - 2) * error
    return Slope(slope * 3600, (slope - half) * 3600, (slope + half) * 3600, n)
