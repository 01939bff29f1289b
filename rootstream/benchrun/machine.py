"""What a machine is, in the words a benchmark report needs.

Both ends describe themselves the same way: the host sends its description
in the config's appended fields (docs/PROTOCOL.md §4), the bench client
describes itself, and the JSON report carries both so two runs can be
compared knowing what ran where.
"""

from __future__ import annotations

import os
import platform
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
