"""The sender stage: one encoded frame in, its datagrams on the wire.

``VideoSender.send_frame(units, stamps, destinations)`` is the whole
packetising path, read top to bottom:

1. each access unit is cut once into VIDEO payloads (rootstream.protocol.video:
   sub-header, data fragments; parity computed on first use and kept);
2. per destination, the data fragments are sealed and sent (the transport
   seals per session, over the one shared socket), paced when the frame is
   large (rootstream.net.pacing);
3. then the parity, computed once whatever the number of destinations, the
   same way;
4. with several viewers (``host --viewers N``), the first is sent to inline
   and every other gets the same payloads through its own thread
   (``outlets``: rootstream.net.fanout.ViewerOutlet), posted once the first
   has its whole frame, so sealing for them never delays the first.

The data fragments are also kept a moment in ``repairs`` (when the host
offers repair: rootstream.net.repair) for a client that asks for some again;
references to the same payloads, after the first viewer's are sent.

Data before parity: a client that loses nothing completes the frame before
the parity is even computed.  The sender owns the frame ids, the FEC share
and the pacer; it runs on the host's encode thread and nowhere else.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial

from rootstream.frame import HostStamps
from rootstream.net.pacing import PacedSender
from rootstream.net.repair import RepairStore
from rootstream.net.udp import UdpTransport
from rootstream.protocol import PacketType, VideoFragmenter

# A keyframe is what a client waits on after a loss; losing it too costs
# another round trip of frozen picture, so it carries more parity.
KEYFRAME_FEC_SHARE = 0.5


class VideoSender:
    """Fragments, protects, seals, paces and sends encoded frames."""

    def __init__(self, transport: UdpTransport, *, max_payload: int, fec_share: float,
                 pacing: bool = True, repairs: RepairStore | None = None):
        self.transport = transport
        self.fragmenter = VideoFragmenter(fec_share=fec_share, max_payload=max_payload)
        self.pacer = PacedSender() if pacing else None
        self.fec_share = fec_share  # follows the loss the client reports (a float store)
        self.repairs = repairs
        # What went out, for the host's report: IDRs (each costs every viewer
        # a large frame) and intra-refresh cycle starts (cost nobody extra).
        self.keyframes_sent = 0
        self.refresh_starts_sent = 0

    @property
    def frames_paced(self) -> int:
        return 0 if self.pacer is None else self.pacer.frames_paced

    def send_frame(self, units: Sequence, stamps: HostStamps, destinations: Sequence[tuple], *,
                   bitrate_bps: int, fps: int, outlets: Sequence = ()) -> int:
        """Send one frame's access units to every destination, and post them to
        every outlet; returns its size in bytes and stamps ``stamps.sent`` when
        the last datagram to ``destinations`` has left."""
        capture_ms = (stamps.captured // 1_000_000) & 0xFFFFFFFF
        host_us = (stamps.encoded - stamps.captured) // 1000
        interval_ns = 1_000_000_000 // max(1, fps)
        size = 0
        posted = []
        for unit in units:
            frame = self._cut(unit, host_us)
            for address in destinations:  # data first: see the module's docstring
                self._send(frame.data, address, capture_ms, bitrate_bps, interval_ns)
            parity = frame.parity()  # computed here, once for every destination
            for address in destinations:
                self._send(parity, address, capture_ms, bitrate_bps, interval_ns)
            size += len(unit.data)
            posted.append(((frame.frame_id, frame.data), parity))
        stamps.sent = time.monotonic_ns()
        if self.repairs is not None:
            for (frame_id, data), _ in posted:
                self.repairs.remember(frame_id, data, capture_ms, stamps.sent)
        # Only now the other viewers' threads: sealing for them never competes
        # with the first viewer's datagrams for the interpreter.
        for (_, data), parity in posted:
            for outlet in outlets:
                outlet.post(data, parity, capture_ms=capture_ms, bitrate_bps=bitrate_bps,
                            interval_ns=interval_ns)
        return size

    def _cut(self, unit, host_us: int):
        share = self.fec_share
        if unit.keyframe and share > 0:
            share = max(share, KEYFRAME_FEC_SHARE)
        self.fragmenter.fec_share = share
        refresh_start = getattr(unit, "refresh_start", False)
        self.keyframes_sent += unit.keyframe
        self.refresh_starts_sent += refresh_start
        return self.fragmenter.cut(unit.data, keyframe=unit.keyframe, host_us=host_us,
                                   refresh_start=refresh_start)

    def _send(self, payloads: list[bytes], address, capture_ms: int, bitrate_bps: int,
              interval_ns: int) -> None:
        if not payloads:
            return
        send_batch = partial(self.transport.send_many, PacketType.VIDEO, address=address,
                             timestamp_ms=capture_ms)
        if self.pacer is None:
            send_batch(payloads)
            return
        self.pacer.send(payloads, send_batch, bitrate_bps=bitrate_bps,
                        frame_interval_ns=interval_ns)
