"""One-slot mailboxes between pipeline stages: the latest frame wins.

A stage that is slower than its producer must never build a queue: a frame
that waits is a frame shown late.  ``put`` replaces an item the consumer has
not taken yet and counts it as dropped.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    def __init__(self, name: str = "mailbox"):
        self.name = name
        self._item: T | None = None
        self._full = False
        self._closed = False
        self._cond = threading.Condition()
        self.dropped = 0
        self.delivered = 0

    def put(self, item: T) -> bool:
        """Offer an item; True when it replaced one nobody took (a drop)."""
        with self._cond:
            replaced = self._full
            if replaced:
                self.dropped += 1
            self._item, self._full = item, True
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> T | None:
        """The newest item, waiting up to ``timeout``; None on timeout or close."""
        with self._cond:
            if not self._full and not self._closed:
                self._cond.wait(timeout)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            self.delivered += 1
            return item

    def clear(self) -> None:
        with self._cond:
            self._item, self._full = None, False

    def close(self) -> None:
        """Wake every waiter; later takes return what is left, then None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
