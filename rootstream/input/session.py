"""The host's side of one client's input: what the host loop calls.

Three duties on top of the injector:
- stale datagrams are dropped.  Input datagrams can be reordered; a late
  one would replay an old key-down after a newer release (or an old snapshot
  after a newer edge), so only datagrams newer than the newest seen, by the
  ROOT header's 16-bit sequence, are applied.  A dropped one costs at most
  one snapshot period, because the next snapshot restores the true state.
- malformed payloads and injector failures are counted, never raised: nothing
  a client sends stops the host loop.
- when the client goes away (bye, timeout) every key, button and gamepad it
  held is released, so the host is never left with a stuck key.

The receive thread calls ``apply`` while a control or timeout path may call
``on_client_gone``; one lock keeps them off the injector at the same time
(Xlib connections and held-state sets are not thread-safe).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable

from rootstream.errors import InputError, ProtocolError
from rootstream.input.injector import Injector
from rootstream.protocol.input import InputEvent, decode_input
from rootstream.protocol.seqnum import seq16_newer


class InputSession:
    def __init__(self, injector: Injector) -> None:
        self.injector = injector
        self.counters: Counter[str] = Counter()
        self.last_error: Exception | None = None
        self._newest: int | None = None
        self._lock = threading.Lock()

    def apply(self, events: Iterable[InputEvent], sequence: int | None = None) -> bool:
        """Inject one datagram's events; False when it was dropped as stale or failed."""
        with self._lock:
            return self._apply(events, sequence)

    def _apply(self, events: Iterable[InputEvent], sequence: int | None) -> bool:
        if sequence is not None:
            if self._newest is not None and not seq16_newer(sequence, self._newest):
                self.counters["stale_dropped"] += 1
                return False
            self._newest = sequence
        try:
            self.injector.inject_many(events)
        except InputError as exc:
            self.counters["inject_failed"] += 1
            self.last_error = exc
            return False
        self.counters["applied"] += 1
        return True

    def apply_payload(self, payload: bytes | memoryview, sequence: int | None = None) -> bool:
        """Decode and inject one INPUT payload; a malformed one is counted and dropped."""
        try:
            events = decode_input(payload)
        except ProtocolError as exc:
            self.counters["malformed_dropped"] += 1
            self.last_error = exc
            return False
        return self.apply(events, sequence)

    def on_client_gone(self) -> None:
        """Release everything the client held; the next client starts afresh."""
        with self._lock:
            self._newest = None
            try:
                self.injector.release_all()
            except InputError as exc:
                self.counters["inject_failed"] += 1
                self.last_error = exc

    def close(self) -> None:
        with self._lock:
            self.injector.close()
