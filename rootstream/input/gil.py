"""Hand the GIL to a waiting input thread quickly, while input is being read or injected.

WHY: an input thread woken by its socket (the client's X11 reader, the
host's control thread) must take the GIL before it can run a line of Python.
A thread that holds it (the presenter's loop, the capture, the stats) gives
it up only after ``sys.getswitchinterval()``, 5 ms by default: the tail of
the input latency measured from outside (bench/bench_input_outside.py).
A shorter interval costs only while two threads want Python at once.

The setting is process-wide: ``hold`` lowers it (never raises it) and
``release`` puts back what was there, once.
"""

from __future__ import annotations

import sys

INPUT_SWITCH_INTERVAL_S = 0.0005


class SwitchInterval:
    def __init__(self, seconds: float = INPUT_SWITCH_INTERVAL_S) -> None:
        self.seconds = seconds
        self._previous: float | None = None

    def hold(self) -> None:
        if self._previous is None:
            self._previous = sys.getswitchinterval()
            sys.setswitchinterval(min(self._previous, self.seconds))

    def release(self) -> None:
        if self._previous is not None:
            sys.setswitchinterval(self._previous)
            self._previous = None


__all__ = ["INPUT_SWITCH_INTERVAL_S", "SwitchInterval"]
