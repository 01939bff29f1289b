"""The bench's phases: what the host is asked to stream, and for how long.

The default plan is the one the README's table shows: the bare network first
(idle: ping/pong only, no session), then 720p60 and 1080p60 at two bitrates
each.  A phase's size and frame rate reach the host as the hello's wishes
(docs/PROTOCOL.md §4): a test-pattern host takes them, a screen keeps its own
size and rate, and the report says what the host actually streamed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rootstream.errors import RootStreamError

DEFAULT_PHASE_SECONDS = 10.0
DEFAULT_IDLE_SECONDS = 5.0
# (width, height, fps, Mbit/s): two sizes, each at a modest and a generous rate.
DEFAULT_STREAMS = ((1280, 720, 60, 5), (1280, 720, 60, 10),
                   (1920, 1080, 60, 10), (1920, 1080, 60, 20))

_PHASE = re.compile(r"^(\d{3,5})x(\d{3,5})@(\d{1,3}):(\d+(?:\.\d+)?)$")


class PlanError(RootStreamError):
    """A phase written on the command line does not parse."""


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    width: int = 0
    height: int = 0
    fps: int = 0
    bitrate_kbps: int = 0
    idle: bool = False  # ping/pong only: the network without a stream

    @classmethod
    def stream(cls, width: int, height: int, fps: int, mbps: float, seconds: float) -> Phase:
        return cls(name=f"{height}p{fps} {mbps:g}M", seconds=seconds, width=width,
                   height=height, fps=fps, bitrate_kbps=round(mbps * 1000))

    def as_dict(self) -> dict:
        return {"name": self.name, "seconds": self.seconds, "width": self.width,
                "height": self.height, "fps": self.fps, "bitrate_kbps": self.bitrate_kbps,
                "idle": self.idle}


def idle_phase(seconds: float) -> Phase:
    return Phase(name="idle", seconds=seconds, idle=True)


def default_plan(phase_seconds: float = DEFAULT_PHASE_SECONDS,
                 idle_seconds: float = DEFAULT_IDLE_SECONDS) -> list[Phase]:
    phases = [idle_phase(idle_seconds)] if idle_seconds > 0 else []
    phases += [Phase.stream(w, h, fps, mbps, phase_seconds) for w, h, fps, mbps in DEFAULT_STREAMS]
    return phases


def parse_phase(text: str, seconds: float) -> Phase:
    """``WIDTHxHEIGHT@FPS:MBPS`` (e.g. ``1920x1080@60:20``), or ``idle``."""
    text = text.strip()
    if text == "idle":
        return idle_phase(seconds)
    match = _PHASE.match(text)
    if not match:
        raise PlanError(f"cannot read the phase {text!r}",
                        hint="write WIDTHxHEIGHT@FPS:MBPS, e.g. 1920x1080@60:20, or idle")
    width, height, fps = (int(match.group(i)) for i in (1, 2, 3))
    mbps = float(match.group(4))
    if width % 2 or height % 2 or not 1 <= fps <= 240 or not 0.2 <= mbps <= 500:
        raise PlanError(f"the phase {text!r} asks for what no host streams",
                        hint="even width and height, 1-240 fps, 0.2-500 Mbit/s")
    return Phase.stream(width, height, fps, mbps, seconds)
