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


# glibc's thread arenas are reserved 64 MiB at a time, aligned to their size
# (HEAP_MAX_SIZE on 64-bit), so an anonymous mapping starting on a 64 MiB
# boundary is one; pymalloc's arenas are anonymous 1 MiB mmaps.
ARENA_ALIGN = 64 << 20
PYMALLOC_ARENA = 1 << 20


def smaps_kinds(pid: int) -> dict[str, int] | None:
    """Resident kB of ``pid`` by kind of mapping, from /proc/PID/smaps: the
    main heap, glibc's thread arenas, pymalloc's arenas, other anonymous
    memory (big mallocs served by mmap, numpy buffers, FFmpeg's pools),
    thread stacks and file-backed mappings (libraries); None once it is gone."""
    kinds = {"heap": 0, "thread_arenas": 0, "pymalloc": 0, "anon": 0, "stack": 0, "file": 0}
    try:
        with open(f"/proc/{pid}/smaps", encoding="utf-8", errors="replace") as smaps:
            kind = "anon"
            for line in smaps:
                head = line.split(None, 6)
                if "-" in head[0] and not head[0].endswith(":"):
                    start, end = (int(x, 16) for x in head[0].split("-"))
                    name = head[5].strip() if len(head) > 5 else ""
                    if name == "[heap]":
                        kind = "heap"
                    elif name.startswith("[stack"):
                        kind = "stack"
                    elif name.startswith("/"):
                        kind = "file"
                    elif name:
                        kind = "anon"  # [vdso], [vvar], ...
                    elif start % ARENA_ALIGN == 0 and end - start <= ARENA_ALIGN:
                        kind = "thread_arenas"
                    elif end - start == PYMALLOC_ARENA:
                        kind = "pymalloc"
                    else:
                        kind = "anon"
                elif head[0] == "Rss:":
                    kinds[kind] += int(head[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return kinds
