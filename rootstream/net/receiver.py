"""The receiver stage: VIDEO payloads in, complete frames out.

``VideoReceiver.push(payload, capture_ms, received_ns)`` is the whole
reassembly path: the fragment goes into the reassembler (FEC repair, order,
loss; rootstream.protocol.reassembly) and a frame that completes is
measured by the path monitor (one-way delay for the bitrate adaptation;
rootstream.net.feedback) and returned.  The client's receive thread owns it.

A new session (the host restarted) starts a new reassembler and path
monitor: its frame ids and clock are new.  The counts of the sessions before
are kept so the client's totals stay whole.
"""

from __future__ import annotations

from rootstream.net.feedback import PathMonitor, PathSample
from rootstream.protocol import AssembledFrame, Reassembler


class VideoReceiver:
    def __init__(self) -> None:
        self.reassembler = Reassembler()
        self.path = PathMonitor()
        self.frames_received = 0
        self._earlier_lost = self._earlier_recovered = 0  # sessions before a reconnect

    def push(self, payload, capture_ms: int, received_ns: int) -> AssembledFrame | None:
        """One VIDEO payload; the frame it completes, or None."""
        frame = self.reassembler.push(payload, capture_ms, received_ns)
        if frame is not None:
            self.frames_received += 1
            self.path.frame(frame.capture_ms, frame.host_us, frame.first_ns)
        return frame

    def expire(self, now_ns: int) -> int:
        """Give up on frames too old to complete; how many were given up."""
        return self.reassembler.expire(now_ns)

    def sample(self, now_ns: int, received_bytes: int) -> PathSample:
        return self.path.sample(now_ns, received_bytes)

    def new_session(self) -> None:
        self._earlier_lost += self.reassembler.stats.frames_lost
        self._earlier_recovered += self.reassembler.stats.frames_recovered
        self.reassembler = Reassembler()
        self.path = PathMonitor()

    @property
    def session_stats(self):
        """This session's ReassemblyStats (what the host is told)."""
        return self.reassembler.stats

    @property
    def frames_lost(self) -> int:
        """Every session's, for the client's own report."""
        return self._earlier_lost + self.reassembler.stats.frames_lost

    @property
    def frames_recovered(self) -> int:
        return self._earlier_recovered + self.reassembler.stats.frames_recovered
