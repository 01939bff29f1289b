"""One viewer's sender thread: the fan-out's cost kept off the encode thread.

With ``host --viewers N`` the encode thread cuts each frame and computes its
parity once (rootstream.net.sender), sends it to the first viewer itself,
and posts the same payloads to a :class:`ViewerOutlet` per other viewer.
Each outlet seals (with its viewer's keys, in the shared transport), paces
and sends on its own thread, so the first viewer's latency does not grow
with the number of viewers.

An outlet holds a few frames at most.  A viewer whose thread falls further
behind than that (a slow path, a starved core) loses the frame rather than
delaying it or anyone else: its client sees the gap and recovers the way it
recovers from any loss (a refresh cycle or a keyframe request).  The frames
it lost are counted (``frames_dropped``) for the host's report.
"""

from __future__ import annotations

import os
import queue
import threading
from functools import partial
from typing import NamedTuple

from rootstream.errors import NetworkError
from rootstream.net.pacing import PacedSender
from rootstream.protocol import PacketType

# Frames waiting for one viewer's thread: two frame intervals of slack; more
# would only show that viewer an ever older picture.
OUTLET_DEPTH = 3

# The outlets' threads run a little below the encode thread (nice +5: a third
# of its share when they contend), so on a busy host the first viewer's frame
# is encoded and sent before the copies for the others are sealed.  Raising a
# thread's nice value needs no privilege.  ROOTSTREAM_OUTLET_NICE=0 turns it off.
OUTLET_NICE = int(os.environ.get("ROOTSTREAM_OUTLET_NICE", "5"))


class _Posted(NamedTuple):
    data: list[bytes]
    parity: list[bytes]
    capture_ms: int
    bitrate_bps: int
    interval_ns: int


class ViewerOutlet:
    """Seals, paces and sends one viewer's copy of every frame on its own thread."""

    def __init__(self, transport, address: tuple, *, pacing: bool = True,
                 depth: int = OUTLET_DEPTH):
        self.transport = transport
        self.address = address
        self.pacer = PacedSender() if pacing else None
        self.frames_sent = 0
        self.frames_dropped = 0
        self._queue: queue.Queue[_Posted | None] = queue.Queue(depth)
        self._thread = threading.Thread(target=self._run, name=f"outlet {address[1]}",
                                        daemon=True)
        self._thread.start()

    def post(self, data: list[bytes], parity: list[bytes], *, capture_ms: int,
             bitrate_bps: int, interval_ns: int) -> bool:
        """Hand over one frame (never blocks); False when this viewer is too
        far behind and the frame was dropped for it alone."""
        try:
            self._queue.put_nowait(_Posted(data, parity, capture_ms, bitrate_bps, interval_ns))
            return True
        except queue.Full:
            self.frames_dropped += 1
            return False

    def lower_priority(self) -> None:
        """Hold one frame at most: a viewer that cannot keep up drops frames
        rather than be sent an ever older picture (rootstream.host.room_policy)."""
        self._queue.maxsize = 1

    def close(self) -> None:
        """Stop the thread; frames still queued are not sent."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(timeout=2)

    def _run(self) -> None:
        if OUTLET_NICE:
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), OUTLET_NICE)
            except OSError:
                pass  # a sandbox that forbids it: the outlet runs at the usual priority
        while True:
            posted = self._queue.get()
            if posted is None:
                return
            try:
                for payloads in (posted.data, posted.parity):  # data before parity, as inline
                    self._send(payloads, posted)
            except NetworkError:
                # The socket refused this viewer's datagrams (a gone route): its
                # liveness check ends the session; the other viewers go on.
                self.frames_dropped += 1
                continue
            self.frames_sent += 1

    def _send(self, payloads: list[bytes], posted: _Posted) -> None:
        if not payloads:
            return
        send_batch = partial(self.transport.send_many, PacketType.VIDEO, address=self.address,
                             timestamp_ms=posted.capture_ms)
        if self.pacer is None:
            send_batch(payloads)
            return
        self.pacer.send(payloads, send_batch, bitrate_bps=posted.bitrate_bps,
                        frame_interval_ns=posted.interval_ns)
