"""The receiver stage: VIDEO payloads in, complete frames out.

``VideoReceiver.push(payload, capture_ms, received_ns)`` is the whole
reassembly path: the fragment goes into the reassembler (FEC repair, order,
loss; rootstream.protocol.reassembly) and a frame that completes is
measured by the path monitor (one-way delay for the bitrate adaptation;
rootstream.net.feedback) and returned.  The client's receive thread owns it.

With repair (both ends announced ``Capability.REPAIR``) the reassembler is a
rootstream.protocol.repair_wait.RepairingReassembler: it asks for lost
fragments (``repairs_due``, sent by rootstream.client.repair) and holds
later frames until they arrive, so frames still leave in order.

A new session (the host restarted) starts a new reassembler and path
monitor: its frame ids and clock are new.  The counts of the sessions before
are kept so the client's totals stay whole.
"""

from __future__ import annotations

from rootstream.net.feedback import PathMonitor, PathSample
from rootstream.protocol import AssembledFrame, Reassembler
from rootstream.protocol.repair import RepairRequest
from rootstream.protocol.repair_wait import RepairingReassembler

_COUNTS = ("frames_lost", "frames_recovered", "frames_repaired", "repair_requests",
           "repairs_failed")


class VideoReceiver:
    def __init__(self) -> None:
        self.repairing = False
        self.reassembler = Reassembler()
        self.path = PathMonitor()
        self.frames_received = 0
        self._earlier = dict.fromkeys(_COUNTS, 0)  # sessions before a reconnect

    def push(self, payload, capture_ms: int, received_ns: int) -> AssembledFrame | None:
        """One VIDEO payload; the frame it completes, or None."""
        frame = self.reassembler.push(payload, capture_ms, received_ns)
        if frame is not None:
            self.frames_received += 1
            self.path.frame(frame.capture_ms, frame.host_us, frame.first_ns)
        return frame

    def expire(self, now_ns: int) -> int:
        """Give up on frames too old to complete (and repairs that did not come);
        how many were given up."""
        return self.reassembler.expire(now_ns)

    def repair(self, on: bool) -> None:
        """Ask for lost fragments from now on (the host offers it), or stop asking."""
        if on != self.repairing:
            self.repairing = on
            self._new_reassembler()

    def repairs_due(self, now_ns: int) -> list[RepairRequest]:
        if not self.repairing:
            return []
        return self.reassembler.repairs_due(now_ns)

    def sample(self, now_ns: int, received_bytes: int) -> PathSample:
        return self.path.sample(now_ns, received_bytes)

    def new_session(self) -> None:
        self._new_reassembler()
        self.path = PathMonitor()

    def _new_reassembler(self) -> None:
        for name in _COUNTS:
            self._earlier[name] += getattr(self.reassembler.stats, name)
        self.reassembler = RepairingReassembler() if self.repairing else Reassembler()

    @property
    def session_stats(self):
        """This session's ReassemblyStats (what the host is told)."""
        return self.reassembler.stats

    def total(self, name: str) -> int:
        """Every session's count of ``name`` (a ReassemblyStats field)."""
        return self._earlier[name] + getattr(self.reassembler.stats, name)

    @property
    def frames_lost(self) -> int:
        """Every session's, for the client's own report."""
        return self.total("frames_lost")

    @property
    def frames_recovered(self) -> int:
        return self.total("frames_recovered")
