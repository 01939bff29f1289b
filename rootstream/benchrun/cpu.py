"""CPU time of this process, read from /proc, for the benchmark's CPU figures.

The host puts its own figure into every pong (``Pong.cpu_ns``); the bench
client samples itself.  A load is two samples apart: CPU nanoseconds spent
over wall nanoseconds passed, as a percentage of one core (``top``'s scale:
two busy cores read 200 %).
"""

from __future__ import annotations

import os
import time

_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_ns(stat_path: str = "/proc/self/stat") -> int:
    """User + system CPU time of this process (all threads), in nanoseconds.

    /proc counts in clock ticks (10 ms at the usual 100 Hz), plenty for loads
    measured over seconds.  Without /proc the C library's process clock
    answers instead.
    """
    try:
        with open(stat_path, "rb") as handle:
            stat = handle.read()
    except OSError:
        return time.process_time_ns()
    return parse_stat_cpu_ns(stat)


def parse_stat_cpu_ns(stat: bytes) -> int:
    """utime + stime of a /proc/PID/stat line, in nanoseconds."""
    # The command name (field 2) is in parentheses and may hold spaces or
    # parentheses itself: the fields we want are counted from the last ')'.
    fields = stat[stat.rindex(b")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) * 1_000_000_000 // _TICKS_PER_S


def load_percent(cpu_ns_before: int, cpu_ns_after: int, wall_ns: int) -> float | None:
    """CPU use between two samples as % of one core; None over no time at all."""
    if wall_ns <= 0:
        return None
    return round(100.0 * max(cpu_ns_after - cpu_ns_before, 0) / wall_ns, 1)
