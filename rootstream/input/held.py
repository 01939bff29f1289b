"""What every client-side capture owes the host: the held keys and buttons, told again and again.

A capture (SdlInputCapture for SDL's window, X11WindowCapture for the x11
presenter's) sends each edge once, the moment it happens, over a link that
may lose it.  So it also tracks every held key and button and sends a
HeldSnapshot right after each release and every ``snapshot_interval_ns``
(``tick``): a host that lost a release heals within that interval, and a
release of everything (``release_all``) ends a focus or a session.

Thread safety is the caller's: client_service holds one lock around every
call, from the window's thread, the reader's and the receive thread.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from rootstream.protocol.input import ButtonEvent, HeldSnapshot, InputEvent, KeyEvent

Send = Callable[[list[InputEvent]], None]

SNAPSHOT_INTERVAL_NS = 250_000_000


class HeldInput:
    """Held state and snapshots; subclasses read the events.  ``on_toggle_*`` run
    for the hotkeys; ``_with_snapshot()`` adds to each periodic snapshot."""

    def __init__(self, send: Send, *, on_toggle_fullscreen: Callable[[], object] | None = None,
                 on_toggle_stats: Callable[[], object] | None = None,
                 on_control: Callable[[str], object] | None = None,
                 snapshot_interval_ns: int = SNAPSHOT_INTERVAL_NS) -> None:
        self._send = send
        self._on_toggle_fullscreen = on_toggle_fullscreen
        self._on_toggle_stats = on_toggle_stats
        # Control between viewers: +C asks for it, +A gives it to the asker, +D keeps it.
        self._on_control = on_control
        self._snapshot_interval_ns = snapshot_interval_ns
        self._last_snapshot_ns = time.monotonic_ns()
        self.held_keys: set[int] = set()
        self.held_buttons: set[int] = set()
        self.pointer_captured = False
        self.stats_visible = False
        self.counters: Counter[str] = Counter()
        self.closed = False

    def snapshot(self) -> HeldSnapshot:
        return HeldSnapshot(tuple(sorted(self.held_keys | self.held_buttons)))

    def tick(self, now_ns: int | None = None) -> bool:
        """Send the periodic snapshot when one is due."""
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        if now_ns - self._last_snapshot_ns < self._snapshot_interval_ns:
            return False
        self._send_snapshot(now_ns, self._with_snapshot())
        return True

    def send_read_elsewhere(self, events: list[InputEvent], released: bool) -> None:
        """Send events read by the X11 reader; after a release, the snapshot goes with them."""
        if released:
            self._last_snapshot_ns = time.monotonic_ns()
            events = [*events, self.snapshot()]
        if events:
            self._send(events)

    def release_all(self) -> None:
        """Tell the host that nothing is held any more (focus loss, disconnect)."""
        events: list[InputEvent] = [KeyEvent(code, False) for code in sorted(self.held_keys)]
        events += [ButtonEvent(code, False) for code in sorted(self.held_buttons)]
        self.held_keys.clear()
        self.held_buttons.clear()
        if events:
            self._send(events)
        self._send_snapshot()

    def _with_snapshot(self) -> list[InputEvent]:
        return []

    def _toggle_fullscreen(self) -> None:
        if self._on_toggle_fullscreen is not None:
            self._on_toggle_fullscreen()

    def _control(self, action: str) -> None:
        if self._on_control is not None:
            self._on_control(action)

    def _toggle_stats(self) -> None:
        self.stats_visible = not self.stats_visible
        if self._on_toggle_stats is not None:
            self._on_toggle_stats()

    def _send_snapshot(self, now_ns: int | None = None, extra: list | None = None) -> None:
        self._last_snapshot_ns = time.monotonic_ns() if now_ns is None else now_ns
        self._send([self.snapshot(), *(extra or ())])


__all__ = ["SNAPSHOT_INTERVAL_NS", "HeldInput", "Send"]
