"""The client's repair requests: asking the host for lost fragments again.

A service (rootstream.session.ClientService) beside the receive loop: its
``wants`` puts ``Capability.REPAIR`` in the hello; when the host's config
offers it too, the receiver (rootstream.net.receiver) switches to the
reassembler that asks and waits (rootstream.protocol.repair_wait).  The
receive loop calls ``tick`` right after every datagram it handles, so a
request for a frame found short leaves at once, ahead of anything else the
loop does next (input-first: nothing queues in front of it), and retries
leave when due.

An older host offers no repair: nothing is asked and the client recovers
with keyframes as before.  ``ClientOptions.repair`` False (``connect
--no-repair``) announces nothing: an older client, for comparisons.
"""

from __future__ import annotations

from rootstream.protocol import Capability, PacketType, encode_control
from rootstream.session import ClientService, SessionInfo


class RepairRequests(ClientService):
    def __init__(self, receiver, *, enabled: bool = True):
        self.receiver = receiver
        self.wants = Capability.REPAIR if enabled else 0
        self._send = None

    def session_started(self, session: SessionInfo, send) -> None:
        offered = bool(self.wants and session.config.capabilities & Capability.REPAIR)
        self.receiver.repair(offered)
        self._send = send if offered else None

    def tick(self, now_ns: int) -> None:
        if self._send is None:
            return
        for request in self.receiver.repairs_due(now_ns):
            self._send(PacketType.CONTROL, encode_control(request))

    def session_ended(self, reason: str) -> None:
        self._send = None
