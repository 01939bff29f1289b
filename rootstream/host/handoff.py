"""Who holds control among a host's viewers: the policy, without sockets or clocks.

One viewer holds control: its input is injected, and clipboard, microphone
and rumble go to and from it alone; every other viewer watches.  The host
loop tells this object who joined and left and what each client asked; it
answers with the ``Change`` to act on (release what the previous holder
held, route input to the new one, log it) and builds each viewer's
``ControlState`` for the wire (rootstream.protocol.handoff).

Rules (`host --handoff ask|free|locked`, `--guests-control`):
- The first paired viewer to join holds control; guests (room code) watch.
- ask: a request waits for the holder's answer (one at a time, denied after
  ``ASK_TIMEOUT_S``); free: the asker gets control at once; locked: never.
  With nobody holding control, a request takes the empty seat in every
  mode, locked included.
- A guest may ask only with free and ``guests_control``.
- When the holder leaves, or gives control back, control goes to the
  longest-connected paired viewer left (none: nobody holds it).  That is no
  hand-off by request, so it happens in locked mode too: otherwise a locked
  host whose holder dropped could never be controlled again.

Time is passed in (``now``, seconds, monotonic), so tests drive it.
"""

from __future__ import annotations

from dataclasses import dataclass

from rootstream.protocol.handoff import (
    NOBODY,
    ControlState,
    HandoffMode,
    RequestOutcome,
    StateFlag,
)

ASK_TIMEOUT_S = 30.0  # an unanswered request is denied after this
MODES = {mode.name.lower(): mode for mode in HandoffMode}


@dataclass
class Viewer:
    number: int
    name: str
    guest: bool
    joined: float
    outcome: RequestOutcome = RequestOutcome.NONE


@dataclass(frozen=True)
class Change:
    """Control moved: ``previous`` (may be NOBODY) lost it, ``holder`` (may be NOBODY) has it."""

    previous: int
    holder: int
    reason: str  # "joined", "granted", "free", "left", "gave back"

    def describe(self, names: dict[int, str]) -> str:
        def who(number: int) -> str:
            return names.get(number, f"viewer {number}") if number != NOBODY else "nobody"
        return f"control: {who(self.previous)} -> {who(self.holder)} ({self.reason})"


class ControlPolicy:
    def __init__(self, mode: HandoffMode | str = HandoffMode.ASK, *,
                 guests_control: bool = False) -> None:
        self.mode = MODES[mode] if isinstance(mode, str) else HandoffMode(mode)
        self.guests_control = guests_control
        self.viewers: dict[int, Viewer] = {}
        self.holder = NOBODY
        self.pending = NOBODY
        self._pending_since = 0.0
        self.change = 0  # +1 per change, told to clients so they drop stale states

    # -- what the host loop reports ---------------------------------------------------

    def join(self, number: int, name: str, *, guest: bool, now: float) -> Change | None:
        if number == NOBODY or number in self.viewers:
            raise ValueError(f"viewer number {number} is taken or invalid")
        self.viewers[number] = Viewer(number, name, guest, now)
        self._changed()
        if self.holder == NOBODY and not guest:
            return self._move(number, "joined")
        return None

    def leave(self, number: int) -> Change | None:
        if self.viewers.pop(number, None) is None:
            return None
        self._changed()
        if self.pending == number:
            self.pending = NOBODY
        if self.holder == number:
            return self._move(self._successor(), "left")
        return None

    def request(self, number: int, now: float) -> Change | None:
        """``number`` asks for control (the hotkey, `connect --control`)."""
        viewer = self.viewers.get(number)
        if viewer is None or number == self.holder:
            return None
        self.expire(now)
        if viewer.guest and not (self.guests_control and self.mode == HandoffMode.FREE):
            return self._settle(viewer, RequestOutcome.NOT_ALLOWED)
        if self.holder == NOBODY or self.mode == HandoffMode.FREE:
            # An empty seat is taken in every mode; free hands it over at once.
            return self._grant(viewer, "free" if self.holder != NOBODY else "granted")
        if self.mode == HandoffMode.LOCKED:
            return self._settle(viewer, RequestOutcome.LOCKED)
        if self.pending not in (NOBODY, number):
            return self._settle(viewer, RequestOutcome.BUSY)
        if self.pending != number:
            self.pending, self._pending_since = number, now
            viewer.outcome = RequestOutcome.WAITING
            self._changed()
        return None

    def answer(self, number: int, asker: int, grant: bool) -> Change | None:
        """The holder's client granted or denied the pending request of ``asker``.

        Anyone else's answer, or one naming another asker than the one pending
        (late, or forged by a viewer), changes nothing.
        """
        if number != self.holder or asker == NOBODY or asker != self.pending:
            return None
        viewer = self.viewers[asker]
        self.pending = NOBODY
        if grant:
            return self._grant(viewer, "granted")
        return self._settle(viewer, RequestOutcome.DENIED)

    def give_back(self, number: int) -> Change | None:
        """The holder stops controlling: the next paired viewer gets it."""
        if number != self.holder:
            return None
        successor = self._successor(excluding=number)
        return self._move(successor, "gave back")

    def expire(self, now: float) -> bool:
        """A request the holder left unanswered for ASK_TIMEOUT_S is denied (True)."""
        if self.pending == NOBODY or now - self._pending_since < ASK_TIMEOUT_S:
            return False
        viewer = self.viewers[self.pending]
        self.pending = NOBODY
        self._settle(viewer, RequestOutcome.DENIED)
        self._changed()
        return True

    # -- what the host asks -----------------------------------------------------------

    def may_control(self, number: int) -> bool:
        """Whether ``number``'s input, clipboard, microphone and rumble flow."""
        return number != NOBODY and number == self.holder

    def state_for(self, number: int) -> ControlState:
        viewer = self.viewers.get(number)
        holder = self.viewers.get(self.holder)
        pending = self.viewers.get(self.pending)
        flags = 0
        if viewer is not None:
            if viewer.guest:
                flags |= StateFlag.GUEST
            if not viewer.guest or (self.guests_control and self.mode == HandoffMode.FREE):
                flags |= StateFlag.MAY_ASK
        watching = len(self.viewers) - (holder is not None)
        return ControlState(
            change=self.change & 0xFFFFFFFF, you=number, holder=self.holder,
            watching=watching, mode=self.mode, flags=flags, pending=self.pending,
            outcome=viewer.outcome if viewer is not None else RequestOutcome.NONE,
            holder_name=holder.name if holder is not None else "",
            pending_name=pending.name if pending is not None else "")

    def names(self) -> dict[int, str]:
        return {number: viewer.name for number, viewer in self.viewers.items()}

    # -- helpers ----------------------------------------------------------------------

    def _grant(self, viewer: Viewer, reason: str) -> Change | None:
        if self.pending == viewer.number:
            self.pending = NOBODY
        viewer.outcome = RequestOutcome.GRANTED
        return self._move(viewer.number, reason)

    def _settle(self, viewer: Viewer, outcome: RequestOutcome) -> None:
        # A change even when the outcome is the same as last time: the asker
        # resends its request until a state newer than its asking answers it.
        viewer.outcome = outcome
        self._changed()
        return None

    def _successor(self, excluding: int = NOBODY) -> int:
        paired = [v for v in self.viewers.values() if not v.guest and v.number != excluding]
        return min(paired, key=lambda v: (v.joined, v.number)).number if paired else NOBODY

    def _move(self, holder: int, reason: str) -> Change | None:
        previous = self.holder
        if holder == previous:
            return None
        self.holder = holder
        if self.pending == holder:
            self.pending = NOBODY
        # A request waits for the holder who was asked; a new holder did not see it.
        if self.pending != NOBODY:
            self._settle(self.viewers[self.pending], RequestOutcome.DENIED)
            self.pending = NOBODY
        self._changed()
        return Change(previous, holder, reason)

    def _changed(self) -> None:
        self.change += 1


__all__ = ["ASK_TIMEOUT_S", "MODES", "Change", "ControlPolicy", "Viewer"]
