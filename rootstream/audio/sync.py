"""Lip sync: keep the sound within ±20 ms of the picture by delaying sound only.

Both streams carry host capture stamps (``time.monotonic_ns()`` on the host)
and the client stamps when each reached the user (client clock).  Each
latency ``client time - host stamp`` includes the same unknown offset between
the two clocks, so the difference between audio latency and video latency
is exact: that is the A/V offset, positive when the sound comes late.

Video is never held back (latest frame wins).  When the sound is early, the
jitter buffer is asked for that much extra delay; when it is late, the extra
delay is given back down to zero, and whatever remains is reported, not
hidden.  The audio side reports the latency it is *settling toward* (its
measured latency minus the jitter buffer's remaining error), so a correction
already under way is not asked for twice.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np


class AudioSync:
    def __init__(self, *, tolerance_ms: float = 20.0, deadband_ms: float = 4.0,
                 max_extra_ms: float = 250.0, window: int = 31):
        self.tolerance_ns = int(tolerance_ms * 1e6)
        self.deadband_ns = int(deadband_ms * 1e6)
        self.max_extra_ns = int(max_extra_ms * 1e6)
        self._video: deque[int] = deque(maxlen=window)
        self._audio: deque[int] = deque(maxlen=window)
        self._lock = threading.Lock()

    def video_presented(self, host_captured_ns: int, client_presented_ns: int) -> None:
        """A picture captured at ``host_captured_ns`` reached the screen now."""
        with self._lock:
            self._video.append(client_presented_ns - host_captured_ns)

    def audio_played(self, host_captured_ns: int, client_heard_ns: int,
                     settling_ns: int = 0) -> None:
        """Sound captured at ``host_captured_ns`` is heard at ``client_heard_ns``;
        ``settling_ns`` is how much later than its target the buffer still plays."""
        with self._lock:
            self._audio.append(client_heard_ns - host_captured_ns - settling_ns)

    def _latencies(self) -> tuple[int, int] | None:
        with self._lock:
            if not self._video or not self._audio:
                return None
            return int(np.median(self._audio)), int(np.median(self._video))

    @property
    def offset_ns(self) -> int | None:
        """Audio latency minus video latency (positive: sound late); None until both known."""
        latencies = self._latencies()
        return None if latencies is None else latencies[0] - latencies[1]

    @property
    def in_sync(self) -> bool:
        offset = self.offset_ns
        return offset is not None and abs(offset) <= self.tolerance_ns

    def extra_delay_ns(self, current_extra_ns: int) -> int:
        """The extra audio delay to ask for next, given the one in force."""
        offset = self.offset_ns
        if offset is None or abs(offset) <= self.deadband_ns:
            return current_extra_ns
        return min(max(current_extra_ns - offset, 0), self.max_extra_ns)
