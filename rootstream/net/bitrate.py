"""Adaptive bitrate: decide the encoder's rate from what the client reports.

A plain synchronous object with no socket and no clock of its own: the host
feeds it one :class:`PathReport` per client stats report (about one a
second) with the time passed in, and gets back a new target when the rate
should change.

The policy is the usual one for real-time video (GCC, SCReAM and the like
share its shape): *lower quickly, raise slowly*.

- Congestion is any of: the one-way delay growing above its floor (a queue
  is building somewhere on the path), heavy loss, or the client receiving
  clearly less than the host sends.  The target drops at once to a share of
  what actually arrived, so a bottleneck is found in one or two reports
  instead of halving blindly step after step.
- A clear path (little loss, no queue) raises the target by a few percent a
  report, and only after a quiet spell since the last decrease; once what
  arrives nears what arrived when congestion last struck, it creeps up by a
  smaller step, so the rate probes a bottleneck rather than slamming
  into it again every few seconds.
- Moderate random loss alone (Wi-Fi) is FEC's job, not a reason to lower:
  the rate holds between the two loss thresholds - unless a queue stands
  at the same time, which makes it a full buffer dropping its tail.

The target always stays within ``[floor_bps, ceiling_bps]``; the ceiling is
the user's ``--bitrate``.

:class:`FecPolicy` is the other half of the answer to loss: the parity share
follows the measured loss (rising at once, falling slowly), from the user's
``--fec`` on a clean path up to half the data, except while the rate is being
lowered - more bytes do not help a full link.
"""

from __future__ import annotations

from dataclasses import dataclass

# Thresholds.  Delay figures are milliseconds of queueing above the floor.
QUEUE_DELAY_OVERUSE_MS = 40.0  # a standing queue this deep is congestion
QUEUE_DELAY_RISING_MS = 15.0  # ...or this deep and still growing
DELAY_TREND_RISING_MS = 5.0  # growth over one report that counts as "still growing"
QUEUE_DELAY_CLEAR_MS = 10.0  # below this the path has no queue to speak of
LOSS_HEAVY = 0.12  # above this FEC (20 %) is near its limit: back off
LOSS_CLEAR = 0.02
RECEIVE_SHORTFALL = 0.75  # received / sent below this: the path cannot carry it

DECREASE_FACTOR = 0.85  # new target = this share of what arrived
INCREASE_FACTOR = 1.08  # per clear report
INCREASE_HOLD_S = 2.0  # no increase this soon after a decrease
MIN_CHANGE = 0.02  # changes smaller than this share are not worth a reconfigure
NEAR_CONGESTION = 0.85  # above this share of the rate that last congested, creep
CREEP_FACTOR = 1.03  # per clear report, near that target
HEADROOM = 1.5  # never raise above this multiple of what actually arrived


@dataclass(frozen=True)
class PathReport:
    """What one client stats interval says about the path.

    ``loss`` is the share of video datagrams lost (0..1);
    ``queue_delay_ms`` the one-way delay above its recent floor and
    ``delay_trend_ms`` its change since the previous report (both from
    differences of one-way delays, so the two clocks' offset cancels);
    ``receive_bps`` what the client received and ``send_bps`` what the host
    sent over about the same interval.
    """

    loss: float = 0.0
    queue_delay_ms: float = 0.0
    delay_trend_ms: float = 0.0
    receive_bps: float = 0.0
    send_bps: float = 0.0


@dataclass(frozen=True)
class Decision:
    """The controller's verdict on one report: the state it saw and the target."""

    state: str  # "overuse", "clear" or "hold"
    target_bps: int
    changed: bool
    reason: str
    cause: str = ""  # for overuse: "delay", "loss" or "shortfall"


class BitrateController:
    """Lower fast on congestion, raise slowly when clear, within [floor, ceiling]."""

    def __init__(self, ceiling_bps: int, floor_bps: int, *, start_bps: int | None = None):
        if ceiling_bps <= 0 or floor_bps <= 0:
            raise ValueError("bitrate limits must be positive")
        self.ceiling_bps = int(ceiling_bps)
        self.floor_bps = min(int(floor_bps), self.ceiling_bps)
        self.target_bps = self._clamp(start_bps if start_bps is not None else ceiling_bps)
        self._last_decrease_ns: int | None = None
        # What arrived when congestion last struck: about the bottleneck's rate.
        self._congested_bps: float | None = None
        self.decreases = 0
        self.increases = 0

    def _clamp(self, bps: float) -> int:
        return int(min(self.ceiling_bps, max(self.floor_bps, bps)))

    def congestion(self, report: PathReport) -> str | None:
        """Why the path looks congested, or None."""
        found = self._congestion(report)
        return None if found is None else found[1]

    def _congestion(self, report: PathReport) -> tuple[str, str] | None:
        if report.queue_delay_ms > QUEUE_DELAY_OVERUSE_MS:
            return "delay", f"queue delay {report.queue_delay_ms:.0f} ms"
        if (report.queue_delay_ms > QUEUE_DELAY_RISING_MS
                and report.delay_trend_ms > DELAY_TREND_RISING_MS):
            return "delay", f"delay growing {report.delay_trend_ms:+.0f} ms"
        if report.loss > LOSS_CLEAR and report.queue_delay_ms > QUEUE_DELAY_CLEAR_MS:
            # Loss while a queue stands is a full buffer dropping its tail,
            # not a radio fade: the rate, not the parity, must give.
            return "delay", (f"loss {report.loss:.0%} with "
                             f"{report.queue_delay_ms:.0f} ms queued")
        if report.loss > LOSS_HEAVY:
            return "loss", f"loss {report.loss:.0%}"
        # (Nothing received at all is the loss rule's case, or a first report
        # with no rate yet.)
        if 0 < report.receive_bps < RECEIVE_SHORTFALL * report.send_bps:
            return "shortfall", (f"received {report.receive_bps / 1e6:.1f} of "
                                 f"{report.send_bps / 1e6:.1f} Mbit/s")
        return None

    def update(self, report: PathReport, now_ns: int) -> Decision:
        found = self._congestion(report)
        if found is not None:
            kind, why = found
            if kind == "loss":
                # Loss with no queue behind it may be a fade or an outage, not
                # a full link: what arrived then says little about capacity.
                wanted = self._clamp(self.target_bps * (1.0 - 0.5 * report.loss))
            else:
                # A queue or a shortfall: what arrived is what the path
                # carries now; aim under it so the queue can drain.
                basis = report.receive_bps if report.receive_bps > 0 else self.target_bps
                wanted = self._clamp(min(self.target_bps, basis) * DECREASE_FACTOR)
            congested_at = report.receive_bps or self.target_bps
            changed = self._set(wanted)
            if changed:
                if kind != "loss":  # (loss alone says nothing of the capacity)
                    self._congested_bps = congested_at
                self._last_decrease_ns = now_ns
                self.decreases += 1
            return Decision("overuse", self.target_bps, changed, why, kind)
        clear = (report.loss < LOSS_CLEAR and report.queue_delay_ms < QUEUE_DELAY_CLEAR_MS)
        if not clear:
            return Decision("hold", self.target_bps, False, "loss or queue in between")
        if (self._last_decrease_ns is not None
                and now_ns - self._last_decrease_ns < INCREASE_HOLD_S * 1e9):
            return Decision("clear", self.target_bps, False, "waiting after a decrease")
        factor = INCREASE_FACTOR
        # Compared in what arrives, not in targets: an encoder may not spend
        # all of its target, and then only the arrivals say where the limit is.
        arriving = report.receive_bps or self.target_bps
        if (self._congested_bps is not None
                and arriving * INCREASE_FACTOR > NEAR_CONGESTION * self._congested_bps):
            factor = CREEP_FACTOR
        wanted = self.target_bps * factor
        if report.receive_bps > 0:
            # An encoder that does not use its budget (a still screen) would
            # otherwise let the target drift far above anything tested.
            wanted = min(wanted, max(self.target_bps, report.receive_bps * HEADROOM))
        changed = self._set(self._clamp(wanted))
        if changed:
            self.increases += 1
        return Decision("clear", self.target_bps, changed, "path clear")

    def _set(self, bps: int) -> bool:
        if bps == self.target_bps:
            return False
        at_limit = bps in (self.floor_bps, self.ceiling_bps)
        if not at_limit and abs(bps - self.target_bps) < MIN_CHANGE * self.target_bps:
            return False
        self.target_bps = bps
        return True


FEC_GAIN = 3.0  # parity share added per unit of loss: 5 % loss -> +15 %
FEC_MAX = 0.5
FEC_STEP = 0.05  # shares move in steps, so a noisy loss figure does not churn
FEC_DECAY = 0.7  # per report, once the loss has dropped: back to base in about 8 s


class FecPolicy:
    """The parity share for the measured loss; ``base`` is the share on a clean path."""

    def __init__(self, base: float, maximum: float = FEC_MAX):
        self.base = base
        self.maximum = max(base, maximum)
        self.share = base
        self._loss = 0.0

    def update(self, loss: float, *, congested: bool = False) -> float | None:
        """The new share when it changes, else None.  ``congested``: hold the share."""
        if self.base <= 0:
            return None  # FEC is off by the user's choice
        # Up at once (the next frames need the parity now), down slowly.
        self._loss = loss if loss > self._loss else FEC_DECAY * self._loss + (1 - FEC_DECAY) * loss
        if congested:
            return None
        wanted = min(self.maximum, self.base + FEC_GAIN * self._loss)
        wanted = max(self.base, round(wanted / FEC_STEP) * FEC_STEP)
        if abs(wanted - self.share) < 1e-9:
            return None
        self.share = wanted
        return wanted


def counter_delta(now: int, before: int, bits: int = 32) -> int:
    """``now - before`` for a counter that wraps at 2**bits (report fields are u32)."""
    return (now - before) % (1 << bits)
