"""The host's input service: the client's INPUT datagrams, injected the moment they arrive.

The host's control thread offers every non-CONTROL datagram from the
session's client to its services; this one takes INPUT and hands it to an
InputSession at once, on that thread, so input never waits behind video
(the capture and encode threads never touch it).  The loop has already
checked that the datagram comes from the session's client and, on an
encrypted session, that it opened under the session's keys.

The injector is opened lazily, when the first session starts: a host
that nobody connects to holds no uinput devices and no X connection, and a
host where no injector works still streams (the reason is logged once and
INPUT datagrams are counted as dropped).  It stays open across sessions; at
the end of each session (bye, timeout, replacement by the same client
starting over) everything the client held is released.

Figures go into the host's stats line: ``input_events`` (events injected),
``input_dropped`` (datagrams not applied: malformed, stale, failed, or no
injector) and the ``inject`` latency ring (decode + inject + flush of one
datagram, on the control thread).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from rootstream.errors import InputError, ProtocolError
from rootstream.input import InputSession, open_injector
from rootstream.input.rumble_link import RumbleSender
from rootstream.protocol import Capability, Header, PacketType
from rootstream.protocol.input import decode_input
from rootstream.service import Sender, Service, SessionInfo

INPUT_CHOICES = ("auto", "uinput", "xtest", "record", "none")
STATS_EVERY_NS = 500_000_000  # how often the counters are mirrored into the host's stats


def injector_options(name: str, display: str | None) -> dict:
    """``open_injector`` options that point the X backend at ``display``.

    ``auto`` takes options per backend; a named backend takes its own.
    """
    if not display:
        return {}
    if name == "auto":
        return {"xtest": {"display": display}}
    if name == "xtest":
        return {"display": display}
    return {}


class HostInput(Service):
    """Inject the session client's input on this host.

    ``injector`` is an ``open_injector`` name ("auto", "uinput", "xtest",
    "record"); ``options`` go to ``open_injector`` with it.  ``stats`` is the
    host's StatsCollector (optional).  ``opener`` replaces ``open_injector``
    (tests hand in an injector built around their own device factory).
    """

    name = "input"

    def __init__(self, injector: str = "auto", *, options: dict | None = None, stats=None,
                 log: Callable[[str], None] = print,
                 opener: Callable[..., object] = open_injector):
        if injector not in INPUT_CHOICES or injector == "none":
            raise InputError(f"unknown input injector {injector!r}",
                             hint="choose one of " + ", ".join(INPUT_CHOICES))
        self.injector_name = injector
        self._options = dict(options or {})
        self._opener = opener
        self._stats = stats
        self._log = log
        self.session: InputSession | None = None
        self.unavailable = ""  # why no injector could be opened, when none could
        self.counters: Counter[str] = Counter()
        self._active = False  # a session is running: its INPUT is applied
        self._next_stats_ns = 0
        self.rumble = RumbleSender(self.counters)  # the games' rumble, to the client

    @property
    def offers(self) -> int:
        """Config capability bits: rumble where the injector can make rumbling pads."""
        can = self.injector_name in ("auto", "uinput") and (
            self.session is None or getattr(self.session.injector, "rumble", None) is not None)
        return Capability.RUMBLE if can else 0

    # -- hooks ----------------------------------------------------------------

    def session_started(self, session: SessionInfo, send: Sender) -> None:
        self._active = True
        if self.session is None:
            self._open()
        wants_rumble = getattr(session, "peer_capabilities", 0) & Capability.RUMBLE
        self.rumble.start(send if wants_rumble else None)

    def handle(self, header: Header, payload: memoryview) -> bool:
        if header.ptype != PacketType.INPUT:
            return False
        started = time.monotonic_ns()
        input_session = self.session
        if input_session is None or not self._active:
            self.counters["input_dropped"] += 1
            self.counters["no_injector"] += 1
            return True
        try:
            events = decode_input(payload)
        except ProtocolError:
            self.counters["input_dropped"] += 1
            self.counters["malformed"] += 1
            return True
        if input_session.apply(events, header.sequence):
            self.counters["input_events"] += len(events)
        else:
            self.counters["input_dropped"] += 1
        if self._stats is not None:
            self._stats.record("inject", time.monotonic_ns() - started)
        return True

    def tick(self, now_ns: int) -> None:
        if now_ns >= self._next_stats_ns:
            self._next_stats_ns = now_ns + STATS_EVERY_NS
            self._publish()

    def session_ended(self, reason: str) -> None:
        self._active = False
        self.rumble.stop()
        if self.session is not None:
            # Whatever the reason (bye, timeout, replaced), nothing stays held.
            self.session.on_client_gone()
            held = self.session.injector
            if held.held_keys or held.held_buttons:
                self.counters["release_failed"] += 1
        self._publish()

    def close(self) -> None:
        self._active = False
        if self.session is not None:
            session, self.session = self.session, None
            try:
                session.close()
            except InputError as exc:
                self._log(f"rootstream host: input: closing the injector failed: {exc}")
        self._publish()

    def can_inject(self) -> bool:
        """An injector is open (opened now when none is yet): the config says input.

        Asked before the first session starts, so a client is told in its
        first config that input would be dropped here and stops sending it.
        """
        if self.session is None:
            self._open()
        return self.session is not None

    # -- helpers --------------------------------------------------------------

    def _open(self) -> None:
        try:
            injector = self._opener(self.injector_name, **self._options)
        except InputError as exc:
            reason = "; ".join([str(exc), *getattr(exc, "details", [])])
            if reason != self.unavailable:
                hint = f" ({exc.hint})" if getattr(exc, "hint", "") else ""
                self._log(f"rootstream host: input disabled: {reason}{hint}")
            self.unavailable = reason
            return
        self.unavailable = ""
        self.session = InputSession(injector)
        self.rumble.attach(getattr(injector, "rumble", None))
        tried = "".join(f"; {why}" for why in getattr(injector, "fallbacks", []))
        self._log(f"rootstream host: input injected with {injector.name}{tried}")

    def _publish(self) -> None:
        if self._stats is None:
            return
        for name in ("input_events", "input_dropped"):
            self._stats.set_total(name, self.counters[name])
