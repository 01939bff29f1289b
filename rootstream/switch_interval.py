"""How often Python hands the GIL over while a stream runs (sys.setswitchinterval).

A stage thread that wakes (a datagram arrived, x264 or FFmpeg returned
without the GIL, a picture is due) while another thread of the same process
runs Python code waits until that thread blocks or until the switch interval
forces it to let go: up to 5 ms with CPython's default, which lands in the
tail of glass-to-glass latency (issue 15).  The host's capture and encode
threads and the client's receive, decode and present stages set a shorter one
while they run (:class:`ShortSwitch`), and put the process's setting back when
the last of them stops.

STREAM_SWITCH_INTERVAL_S is what bench/bench_glass.py's ``rootstream-gil*``
variants set; None leaves Python's setting alone.
"""

from __future__ import annotations

import sys
import threading

STREAM_SWITCH_INTERVAL_S: float | None = None


class ShortSwitch:
    """One holder of a short switch interval: ``hold()`` when a stage starts,
    ``release()`` when it stops (both idempotent).  The process's interval stays at
    STREAM_SWITCH_INTERVAL_S (or shorter, if it already was) while any holder holds,
    so the host's and the client's stages, or two sessions, may overlap."""

    _lock = threading.Lock()
    _holders = 0
    _previous: float | None = None

    def __init__(self) -> None:
        self._held = False

    def hold(self) -> None:
        wanted = STREAM_SWITCH_INTERVAL_S
        with ShortSwitch._lock:
            if self._held:
                return
            self._held = True
            ShortSwitch._holders += 1
            if ShortSwitch._holders == 1 and wanted is not None:
                ShortSwitch._previous = sys.getswitchinterval()
                sys.setswitchinterval(min(ShortSwitch._previous, wanted))

    def release(self) -> None:
        with ShortSwitch._lock:
            if not self._held:
                return
            self._held = False
            ShortSwitch._holders -= 1
            if ShortSwitch._holders == 0 and ShortSwitch._previous is not None:
                sys.setswitchinterval(ShortSwitch._previous)
                ShortSwitch._previous = None
