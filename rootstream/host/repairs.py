"""Answering repair requests: lost fragments sent again to the viewer that asks.

A client whose frame lost more than its parity rebuilds names the data
fragments it lacks (rootstream.protocol.repair.RepairRequest; the client's
side is rootstream.protocol.repair_wait).  :class:`RepairDesk` looks the
frame up in the one store of what was sent (rootstream.net.repair.RepairStore,
fed by the sender stage) and sends the named fragments again, on the control
thread: never on the encode thread, so a viewer's repairs do not delay the
first viewer's frames.  The transport seals each one afresh with the asking
session's keys and counters.

A bad path, or a flood of requests from the network, costs at most the
viewer's budget (rootstream.net.repair.RepairBudget: a quarter of the
bitrate); what is over is dropped and counted, as are requests for frames
no longer kept.  A host started with ``--no-repair`` offers no repair in its
config, so no client asks; one that asks anyway is not answered.
"""

from __future__ import annotations

import time

from rootstream.net.repair import RepairStore
from rootstream.protocol import PacketType
from rootstream.protocol.repair import RepairRequest


class RepairDesk:
    def __init__(self, store: RepairStore | None, *, transport, bitrate, stats):
        self.store = store
        self.transport = transport
        self._bitrate = bitrate  # () -> the stream's bitrate now, in bit/s
        self.stats = stats

    @property
    def offered(self) -> bool:
        return self.store is not None

    def serve(self, viewer, request: RepairRequest) -> int:
        """Send what ``viewer`` asked for, within its budget; how many fragments went."""
        self.stats.count("repair_requests")
        viewer.count("repair_requests")
        if self.store is None:
            self.stats.count("repairs_dropped_unoffered")
            return 0
        now_ns = time.monotonic_ns()
        frame = self.store.lookup(request.frame_id, now_ns)
        if frame is None:
            self.stats.count("repairs_dropped_gone")
            viewer.count("repairs_dropped_gone")
            return 0
        payloads = []
        bitrate = self._bitrate()
        budget = viewer.repair_budget
        for index in request.indices(len(frame.data)):
            payload = frame.data[index]
            if not budget.take(len(payload), bitrate, now_ns):
                dropped = len(request.indices(len(frame.data))) - len(payloads)
                self.stats.count("repairs_dropped_rate", dropped)
                viewer.count("repairs_dropped_rate", dropped)
                break
            payloads.append(payload)
        if payloads:
            self.transport.send_many(PacketType.VIDEO, payloads, viewer.address,
                                     timestamp_ms=frame.capture_ms)
            self.stats.count("repairs_sent", len(payloads))
            viewer.count("repairs_sent", len(payloads))
        return len(payloads)
