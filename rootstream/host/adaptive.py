"""The host's adaptive bitrate service: client stats in, encoder rate out.

Each StatsReport (about one a second) becomes a
:class:`rootstream.net.bitrate.PathReport`: the report's counters are
cumulative, so loss is the difference since the previous report, and the
host's own send rate over the same span is set against what the client says
it received.  When the controller picks a new target the service hands it
to the encode thread (``apply``: the encoder is not thread-safe, so the
encode loop applies it before its next frame) and tells the client with a
Bitrate message.  The same reports set the FEC parity share
(:class:`rootstream.net.bitrate.FecPolicy`) through ``apply_fec``.

The controller reasons about what crosses the wire - the client's receive
rate and the host's send rate both include parity - so its target is a wire
rate, and the encoder gets that target less the parity share: when loss
calls for more parity, the picture gives up the room for it rather than the
link being asked for more.  ``--bitrate`` caps the encoder.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rootstream.net.bitrate import (
    MIN_CHANGE,
    BitrateController,
    FecPolicy,
    PathReport,
    counter_delta,
)
from rootstream.protocol import Bitrate, PacketType, StatsReport, encode_control
from rootstream.session import Sender, Service, SessionInfo

DEFAULT_FLOOR_BPS = 500_000


class AdaptiveBitrate(Service):
    name = "bitrate"

    def __init__(self, ceiling_bps: int, floor_bps: int = DEFAULT_FLOOR_BPS, *,
                 apply: Callable[[int], None], sent_bytes: Callable[[], int],
                 apply_fec: Callable[[float], None] | None = None, fec_share: float = 0.0,
                 log: Callable[[str], None] = print,
                 clock: Callable[[], int] = time.monotonic_ns):
        self.ceiling_bps = ceiling_bps
        self.floor_bps = min(floor_bps, ceiling_bps)
        self._configured = (ceiling_bps, floor_bps)
        self._apply = apply
        self._sent_bytes = sent_bytes
        self._apply_fec = apply_fec
        self.fec_share = fec_share
        self.fec = FecPolicy(fec_share)
        self.controller = self._new_controller()
        self.encoder_bps = ceiling_bps
        self._log = log
        self._clock = clock
        self._send: Sender | None = None
        self._previous: StatsReport | None = None
        self._previous_sent: tuple[int, int] | None = None  # (ns, bytes)
        self.last_report: PathReport | None = None

    def session_started(self, session: SessionInfo, send: Sender) -> None:
        # Every session starts at its announced rate (the host's --bitrate, or
        # what the client asked for, e.g. a bench phase) and never exceeds it:
        # a new client may sit on a different path, and the first reports
        # correct a congested one fast.
        ceiling, floor = self._configured
        config = getattr(session, "config", None)
        if config is not None and config.bitrate_kbps > 0:
            ceiling = config.bitrate_kbps * 1000
        self.ceiling_bps, self.floor_bps = ceiling, min(floor, ceiling)
        self.fec = FecPolicy(self.fec_share)
        self.controller = self._new_controller()
        if self._apply_fec is not None:
            self._apply_fec(self.fec_share)
        self._send = send
        self._previous = None
        self._previous_sent = (self._clock(), self._sent_bytes())
        self.encoder_bps = self.ceiling_bps
        self._apply(self.ceiling_bps)

    def _new_controller(self) -> BitrateController:
        # Wire rates: room for the most parity above the encoder's ceiling,
        # starting at the ceiling with the configured parity.
        return BitrateController(int(self.ceiling_bps * (1 + self.fec.maximum)),
                                 int(self.floor_bps * (1 + self.fec_share)),
                                 start_bps=int(self.ceiling_bps * (1 + self.fec_share)))

    def _encoder_rate(self) -> int:
        share = self.fec.share if self._apply_fec is not None else self.fec_share
        wanted = self.controller.target_bps / (1 + share)
        return int(min(self.ceiling_bps, max(self.floor_bps, wanted)))

    def session_ended(self, reason: str) -> None:
        self._send = None

    def on_control(self, message: object) -> None:
        if not isinstance(message, StatsReport) or self._send is None:
            return
        now = self._clock()
        sent_now = self._sent_bytes()
        # The first report counts from the client's start: acting on it
        # rather than waiting for a second saves a second of congestion.
        previous, self._previous = self._previous or StatsReport(), message
        sent_before, self._previous_sent = self._previous_sent, (now, sent_now)
        if sent_before is None or now <= sent_before[0]:
            return
        received = counter_delta(message.datagrams_received, previous.datagrams_received)
        lost = counter_delta(message.datagrams_lost, previous.datagrams_lost)
        loss = lost / (received + lost) if received + lost else 0.0
        send_bps = (sent_now - sent_before[1]) * 8e9 / (now - sent_before[0])
        report = PathReport(loss=loss, queue_delay_ms=message.queue_delay_us / 1000,
                            delay_trend_ms=message.delay_trend_us / 1000,
                            receive_bps=message.receive_kbps * 1000, send_bps=send_bps)
        self.last_report = report
        decision = self.controller.update(report, now)
        # While the rate is being lowered, more parity would only take more of
        # the link; once the rate holds, the loss that remains is FEC's job.
        share = self.fec.update(loss, congested=decision.state == "overuse")
        if share is not None and self._apply_fec is not None:
            self._log(f"fec: {share:.0%} parity (loss {loss:.1%})")
            self._apply_fec(share)
        rate = self._encoder_rate()
        at_limit = rate in (self.floor_bps, self.ceiling_bps)
        if rate != self.encoder_bps and (
                at_limit or abs(rate - self.encoder_bps) >= MIN_CHANGE * self.encoder_bps):
            self.encoder_bps = rate
            self._log(f"bitrate: {rate / 1e6:.2f} Mbit/s ({decision.reason}; "
                      f"{decision.target_bps / 1e6:.2f} Mbit/s on the wire)")
            self._apply(rate)
            self._send(PacketType.CONTROL, encode_control(Bitrate(rate // 1000)))
