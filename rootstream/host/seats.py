"""Control among the host's viewers, wired to its session table and services.

rootstream.host.handoff decides who holds control; this module makes it so
on a running host.  The host's services split in two:

- **holder services** (``HOLDER_SERVICES``: input, microphone, clipboard)
  serve the viewer in control alone: its INPUT is injected (and nobody
  else's: the host loop asks ``may_control`` and drops and counts the rest),
  its microphone plays, the games' rumble goes to it, the clipboard is
  shared with it, and never with a guest (a guest never receives the host's
  clipboard, even holding control);
- **stream services** (sound, the adaptive bitrate, and any service handed
  in by a program) follow the first viewer, as rootstream.host.viewers says:
  its reports steer the rate, and the sound fans out to everyone.

On every move of control the previous holder's holder services end (the
input service releases every key, button and pad it held) and the new
holder's start; the change is logged and every viewer whose hello had the
hand-off bit is sent its ControlState, again every ``STATE_EVERY_S``.
"""

from __future__ import annotations

from collections.abc import Callable

from rootstream.host.handoff import Change, ControlPolicy
from rootstream.protocol import Capability
from rootstream.protocol.handoff import (
    NOBODY,
    ControlAction,
    ControlAnswer,
    ControlRequest,
    RequestOutcome,
)

HOLDER_SERVICES = frozenset({"input", "microphone", "clipboard"})
_SAID = {RequestOutcome.WAITING: "waiting for an answer", RequestOutcome.DENIED: "denied",
         RequestOutcome.LOCKED: "refused (locked)", RequestOutcome.NOT_ALLOWED: "refused (guest)",
         RequestOutcome.BUSY: "refused (another request waits)"}
STATE_EVERY_S = 1.0  # states are resent: a lost one is healed within this


class Seats:
    """``services`` is the host's list (split here once); ``send_control(message,
    address)`` sends one CONTROL message; ``sender(viewer, service)`` is the Sender
    that service gets for that viewer."""

    def __init__(self, services: list, *, mode: str = "ask", guests_control: bool = False,
                 send_control: Callable, sender: Callable, log: Callable[[str], None] = print,
                 stats=None) -> None:
        self.policy = ControlPolicy(mode, guests_control=guests_control)
        self.holder_services = [s for s in services if s.name in HOLDER_SERVICES]
        self.stream_services = [s for s in services if s.name not in HOLDER_SERVICES]
        self._send_control = send_control
        self._sender = sender
        self._log = log
        self._stats = stats
        self._viewers: dict[int, object] = {}  # number -> Viewer (rootstream.host.viewers)
        self._guests: set[int] = set()
        self._next_number = 1
        self._next_state = 0.0

    # -- the host loop's hooks ---------------------------------------------------------

    def joined(self, viewer, *, guest: bool, now: float) -> None:
        """A viewer's session started (before its config is sent)."""
        viewer.seat = self._allocate()
        self._viewers[viewer.seat] = viewer
        if guest:
            self._guests.add(viewer.seat)
        self._apply(self.policy.join(viewer.seat, viewer.client_name, guest=guest, now=now))

    def started(self, viewer) -> None:
        """Its config went out (``viewer.info`` is set): serve it if it holds control."""
        if self.policy.may_control(viewer.seat):
            self._start_holder(viewer)
        self._send_states()

    def left(self, viewer, why: str) -> None:
        number = getattr(viewer, "seat", NOBODY)
        if number not in self._viewers:
            return
        was_holder = self.policy.may_control(number)
        change = self.policy.leave(number)
        del self._viewers[number]
        self._guests.discard(number)
        if was_holder and viewer.info is not None:
            for service in self.holder_services:
                service.session_ended(why)
        self._apply(change)

    def may_control(self, viewer) -> bool:
        """Whether this viewer's INPUT and microphone are taken (else dropped and counted)."""
        return viewer is not None and self.policy.may_control(getattr(viewer, "seat", NOBODY))

    def on_control(self, viewer, message, now: float, *, first: bool) -> None:
        """A CONTROL message from a viewer: requests and answers here, the rest to the
        services that serve this viewer."""
        number = getattr(viewer, "seat", NOBODY)
        if isinstance(message, (ControlRequest, ControlAnswer)):
            before = self._outcomes()
            if isinstance(message, ControlAnswer):
                change = self.policy.answer(number, message.asker, bool(message.grant))
            elif message.action == ControlAction.ASK:
                change = self.policy.request(number, now)
            else:
                change = self.policy.give_back(number)
            self._say_outcomes(before)
            self._apply(change)
            self._send_states()
            return
        if first:
            for service in self.stream_services:
                service.on_control(message)
        if self.policy.may_control(number):
            for service in self.holder_services:
                service.on_control(message)

    def start_stream_services(self, viewer) -> None:
        """The first viewer (a new one, or the next one after the first left)."""
        for service in self.stream_services:
            service.session_started(viewer.info, self._sender(viewer, service))

    def end_stream_services(self, why: str) -> None:
        """The first viewer left.  A service that serves the room (``serves_room``:
        the sound) goes on while others watch: the host hands it the next first
        viewer's session, and ending it here would cut every listener's sound."""
        others = len(self._viewers) > 1  # the leaver is still in the table here
        for service in self.stream_services:
            if not (others and getattr(service, "serves_room", False)):
                service.session_ended(why)

    def tick(self, now: float) -> None:
        """Deny a request the holder left unanswered; resend every viewer its state."""
        before = self._outcomes() if self.policy.pending != NOBODY else None
        expired = self.policy.expire(now)
        if expired:
            self._say_outcomes(before)  # "... asked den: denied" (no answer in time)
        if expired or now >= self._next_state:
            self._next_state = now + STATE_EVERY_S
            self._send_states()

    # -- helpers -----------------------------------------------------------------------

    def _outcomes(self) -> dict[int, RequestOutcome]:
        return {n: v.outcome for n, v in self.policy.viewers.items()}

    def _say_outcomes(self, before: dict[int, RequestOutcome]) -> None:
        """Log what became of a request that did not move control (a move logs itself)."""
        names = self.policy.names()
        for number, viewer in self.policy.viewers.items():
            if viewer.outcome != before.get(number) and viewer.outcome in _SAID:
                holder = names.get(self.policy.holder, "nobody")
                self._log(f"rootstream host: control: {names[number]} asked {holder}: "
                          f"{_SAID[viewer.outcome]}")

    def _allocate(self) -> int:
        while self._next_number == NOBODY or self._next_number in self._viewers:
            self._next_number = (self._next_number + 1) & 0xFFFF
        number, self._next_number = self._next_number, (self._next_number + 1) & 0xFFFF
        return number

    def _apply(self, change: Change | None) -> None:
        if change is None:
            return
        self._log(f"rootstream host: {change.describe(self.policy.names())}")
        if self._stats is not None:
            self._stats.count("control_changes")
        previous = self._viewers.get(change.previous)  # None when it left (already ended)
        if previous is not None and previous.info is not None:
            # Everything it held is released: the input service lets go of every
            # key, button and pad, rumble stops, its clipboard and microphone end.
            for service in self.holder_services:
                service.session_ended("handoff")
        holder = self._viewers.get(change.holder)
        if holder is not None and holder.info is not None:
            self._start_holder(holder)
        self._send_states()

    def _start_holder(self, viewer) -> None:
        for service in self.holder_services:
            if service.name == "clipboard" and viewer.seat in self._guests:
                continue  # a guest never receives the host's clipboard
            service.session_started(viewer.info, self._sender(viewer, service))

    def _send_states(self) -> None:
        for number, viewer in list(self._viewers.items()):
            info = viewer.info
            if info is not None and info.peer_capabilities & Capability.HANDOFF:
                self._send_control(self.policy.state_for(number), viewer.address)


__all__ = ["HOLDER_SERVICES", "STATE_EVERY_S", "Seats"]
