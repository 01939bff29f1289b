"""What a machine is, in the words a benchmark report needs, and what this
process has spent of its CPU.

Both ends describe themselves the same way: the host sends its description
in the config's appended fields (docs/PROTOCOL.md §4), the bench client
describes itself, and the JSON report carries both so two runs can be
compared knowing what ran where.

CPU time is read from /proc for the benchmark's load figures: the host puts
its own figure into every pong (``Pong.cpu_ns``); the bench client samples
itself.  A load is two samples apart: CPU nanoseconds spent over wall
nanoseconds passed, as a percentage of one core (``top``'s scale: two busy
cores read 200 %).
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Machine:
    system: str  # kernel name, release and architecture ("uname -srm")
    cpu: str  # CPU model
    cpus: int  # logical CPUs
    software: str  # rootstream, Python, PyAV and FFmpeg versions

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Machine:
        return cls(str(data.get("system", "")), str(data.get("cpu", "")),
                   int(data.get("cpus", 0)), str(data.get("software", "")))


def describe_machine() -> Machine:
    uname = platform.uname()
    return Machine(system=f"{uname.system} {uname.release} {uname.machine}",
                   cpu=cpu_model(), cpus=os.cpu_count() or 0, software=software_versions())


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's marketing name: x86 says "model name", many ARM kernels
    "Hardware" or "Model"; failing those, what Python knows."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        text = ""
    found = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip():
            found.setdefault(key.strip().lower(), value.strip())
    for key in ("model name", "hardware", "model", "cpu model", "cpu"):
        if key in found:
            return found[key]
    return platform.processor() or platform.machine() or "unknown"


def software_versions() -> str:
    """One line: the versions a latency figure depends on."""
    from rootstream import __version__

    parts = [f"rootstream {__version__}", f"Python {platform.python_version()}"]
    try:
        import av

        parts.append(f"PyAV {av.__version__}")
        ffmpeg = getattr(av, "ffmpeg_version_info", None)
        if ffmpeg is None:
            major, minor, micro = av.library_versions.get("libavcodec", (0, 0, 0))
            ffmpeg = f"libavcodec {major}.{minor}.{micro}"
        parts.append(f"FFmpeg {ffmpeg}")
    except ImportError:
        parts.append("PyAV missing")
    return ", ".join(parts)


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
