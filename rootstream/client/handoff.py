"""The client's side of control between viewers: who holds it, asking for it, answering.

The host sends every viewer a ControlState (rootstream.protocol.handoff) on
each change and every second.  This service keeps the newest one and:

- lets the window's input go to the host only while this client holds
  control (the host would drop it anyway, and count it);
- asks for control with `connect --control` (once the first state shows we
  do not hold it) and with Ctrl+Alt+Shift+C, repeating the request until the
  host's state says what became of it (a request can be lost);
- shows the holder a waiting request in the log and the stats overlay, and
  answers it: Ctrl+Alt+Shift+A accepts, +D denies;
- gives control back with Ctrl+Alt+Shift+G (request action 2): the host
  moves it to the longest-connected paired viewer, or leaves the seat empty
  for the next to ask; sent again until the state shows we no longer hold it;
- gives the overlay its line: "control: you; 2 watching" or
  "control: den; 2 watching".

A host without the hand-off bit in its config is an older, single-client
host: this client holds control there, as it always did.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rootstream.protocol import Capability, PacketType, encode_control, seq32_newer
from rootstream.protocol.handoff import (
    NOBODY,
    ControlAction,
    ControlAnswer,
    ControlRequest,
    ControlState,
    RequestOutcome,
    StateFlag,
)
from rootstream.session import ClientService, Sender, SessionInfo

RESEND_NS = 500_000_000  # an unanswered request is sent again this often
GIVE_BACK_TRIES = 5  # a give-back the host ignores (we no longer hold) is not sent forever

OUTCOME_LINES = {
    RequestOutcome.GRANTED: "rootstream: you have control: your keys, mouse and pads reach "
                            "the host",
    RequestOutcome.WAITING: "rootstream: asked {holder} for control; waiting for an answer",
    RequestOutcome.DENIED: "rootstream: {holder} kept control",
    RequestOutcome.LOCKED: "rootstream: control is locked on this host (host --handoff locked)",
    RequestOutcome.NOT_ALLOWED: "rootstream: guests watch only here (the host allows guests "
                                "control with --handoff free --guests-control)",
    RequestOutcome.BUSY: "rootstream: another viewer's request waits for {holder}; try again "
                         "in a moment",
}


class ClientControl(ClientService):
    """See the module docstring.  ``client_input`` is the ClientInput (or None without
    input); ``ask`` is `connect --control`."""

    name = "control"
    wants = Capability.HANDOFF

    def __init__(self, client_input=None, *, ask: bool = False,
                 log: Callable[[str], None] = print) -> None:
        self._input = client_input
        self._log = log
        self._ask_at_start = ask
        self._send: Sender | None = None
        self.state: ControlState | None = None
        self.host_hands_off = False  # the host's config has the hand-off bit
        # The state's change when we asked, while no newer state has answered.
        self._asked_at: int | None = None
        self._next_resend_ns = 0
        self._give_back_tries = 0  # give-backs left to send while we still hold control
        if client_input is not None:
            client_input.on_control_hotkey = self.hotkey

    # -- hooks -------------------------------------------------------------------------

    def session_started(self, session: SessionInfo, send: Sender) -> None:
        self._send = send
        self.state = None
        self.host_hands_off = bool(session.config.capabilities & Capability.HANDOFF)
        # An older host has one client, and it controls; a newer one says who does.
        self._set_holding(not self.host_hands_off)

    def session_ended(self, reason: str) -> None:
        self._send = None
        self._asked_at = None
        self._give_back_tries = 0

    def on_control(self, message) -> None:
        if not isinstance(message, ControlState):
            return
        old = self.state
        if old is not None and not seq32_newer(message.change, old.change):
            return  # a resend, or one overtaken on the way
        self.state = message
        self._set_holding(message.you_hold)
        if not message.you_hold:
            self._give_back_tries = 0
        self._say_what_changed(old, message)
        if self._asked_at is not None and seq32_newer(message.change, self._asked_at) and (
                message.outcome != RequestOutcome.NONE or message.you_hold):
            self._asked_at = None  # the host has settled the request (or put it to the holder)
        if self._ask_at_start:
            self._ask_at_start = False
            if not message.you_hold:
                self.ask()

    def tick(self, now_ns: int) -> None:
        if self._asked_at is not None and now_ns >= self._next_resend_ns:
            self._next_resend_ns = now_ns + RESEND_NS
            self._request(ControlAction.ASK)
        if self._give_back_tries and now_ns >= self._next_resend_ns:
            self._give_back_tries -= 1
            self._next_resend_ns = now_ns + RESEND_NS
            self._request(ControlAction.GIVE_BACK)

    # -- asking and answering ----------------------------------------------------------

    def hotkey(self, action: str) -> None:
        """Ctrl+Alt+Shift+C ("ask"), +A ("accept"), +D ("deny"), +G ("give back"), from
        the window's thread."""
        {"ask": self.ask, "accept": lambda: self.answer(True),
         "deny": lambda: self.answer(False),
         "give back": self.give_back}.get(action, lambda: None)()

    def ask(self) -> None:
        state = self.state
        if not self.host_hands_off:
            self._log("rootstream: this host has one viewer, and it is you: nothing to ask")
            return
        if state is not None and state.you_hold:
            self._log("rootstream: you have control already")
            return
        if state is not None and not state.flags & StateFlag.MAY_ASK:
            self._log(OUTCOME_LINES[RequestOutcome.NOT_ALLOWED])
            return
        self._asked_at = state.change if state is not None else 0
        self._next_resend_ns = time.monotonic_ns() + RESEND_NS
        self._request(ControlAction.ASK)

    def give_back(self) -> None:
        state = self.state
        if not self.host_hands_off:
            self._log("rootstream: this host has one viewer, and it is you: control stays here")
            return
        if state is None or not state.you_hold:
            self._log("rootstream: you do not hold control: nothing to give back")
            return
        self._asked_at = None  # giving back ends our own wish for it
        self._give_back_tries = GIVE_BACK_TRIES - 1
        self._next_resend_ns = time.monotonic_ns() + RESEND_NS
        self._request(ControlAction.GIVE_BACK)

    def answer(self, grant: bool) -> None:
        state = self.state
        if state is None or not state.you_hold or state.pending == NOBODY:
            self._log("rootstream: no request for control waits for your answer")
            return
        if self._send is not None:
            self._send_message(ControlAnswer(state.pending, int(grant)))

    # -- the overlay -------------------------------------------------------------------

    def overlay_lines(self) -> list[str]:
        state = self.state
        if state is None:
            return []
        holder = "you" if state.you_hold else (state.holder_name or "nobody")
        lines = [f"control: {holder}; {state.watching} watching"]
        if state.you_hold and state.pending != NOBODY:
            lines.append(f"{state.pending_name or 'a viewer'} asks for control: "
                         "Ctrl+Alt+Shift+A gives it, +D keeps it")
        return lines

    # -- helpers -----------------------------------------------------------------------

    def _request(self, action: ControlAction) -> None:
        if self._send is not None:
            self._send_message(ControlRequest(action))

    def _send_message(self, message) -> None:
        self._send(PacketType.CONTROL, encode_control(message))

    def _set_holding(self, holding: bool) -> None:
        if self._input is not None:
            self._input.set_in_control(holding)

    def _say_what_changed(self, old: ControlState | None, new: ControlState) -> None:
        holder = new.holder_name or "nobody"
        if old is None or (old.holder, old.you_hold) != (new.holder, new.you_hold):
            who = "you" if new.you_hold else holder
            self._log(f"rootstream: control: {who}; {new.watching} watching"
                      + (" (Ctrl+Alt+Shift+G gives it back)" if new.you_hold
                         else " (Ctrl+Alt+Shift+C asks for control)"
                         if new.flags & StateFlag.MAY_ASK else ""))
        if new.you_hold and new.pending != NOBODY and (old is None or old.pending != new.pending):
            self._log(f"rootstream: {new.pending_name or 'a viewer'} asks for control: "
                      "Ctrl+Alt+Shift+A gives it, Ctrl+Alt+Shift+D keeps it")
        settled = self._asked_at is not None and seq32_newer(new.change, self._asked_at)
        if settled or new.outcome != (old.outcome if old is not None else RequestOutcome.NONE):
            line = OUTCOME_LINES.get(new.outcome)
            if line and not (new.outcome == RequestOutcome.GRANTED and not new.you_hold):
                self._log(line.format(holder=holder))


__all__ = ["ClientControl"]
