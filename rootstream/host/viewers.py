"""The host's session table: who is watching, in the order they came.

``host --viewers N`` lets up to N clients watch one capture and one encode at
once; each is a :class:`Viewer` with its own Noise session (its keys live in
the transport, rootstream.net.udp), its own liveness, loss reports and, for
every viewer but the first, its own sender thread
(rootstream.net.fanout.ViewerOutlet) so sealing and sending for it never
runs on the encode thread.

The stable questions other parts ask, and the only way they should ask them:

- ``viewers.of(address)``: which session is this datagram's (None: nobody's);
- ``viewers.list()``: every session, first first (a snapshot: safe to iterate
  while sessions come and go);
- ``viewers.is_first(viewer)`` / ``viewers.first()``: the first session, whose
  wishes set the stream, whose reports set the rate, and whose input is the
  one injected (the only input rule today: see rootstream.host.control).

Read from the encode thread too (``destinations``): the table is replaced as
a whole tuple on every change (copy on write), so readers never lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from rootstream.net.repair import RepairBudget
from rootstream.protocol import Capability, StatsReport
from rootstream.session import SessionInfo


@dataclass(eq=False)
class Viewer:
    """One client's session on this host."""

    address: tuple
    session_id: int
    client_name: str
    started: float
    last_heard: float
    info: SessionInfo | None = None  # set once its config is sent
    outlet: object | None = None  # its sender thread (every viewer but the first)
    last_stats: StatsReport | None = None  # its latest loss/latency report
    counts: dict[str, int] = field(default_factory=dict)  # e.g. input it sent, dropped
    # Its keyframe requests: since when it has been asking, and the last one
    # (rootstream.host.room_policy decides whether one makes an IDR).
    asking_since: float | None = None
    last_asked: float = 0.0
    seat: int = 0  # its number for handing control around (rootstream.host.seats)
    # What it may be sent again on top of the stream (rootstream.host.repairs).
    repair_budget: RepairBudget = field(default_factory=RepairBudget)

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def figures(self) -> dict:
        """This viewer's line in the host's report."""
        figures = {"address": f"{self.address[0]}:{self.address[1]}", **self.counts}
        if self.outlet is not None:
            figures["frames_sent"] = self.outlet.frames_sent
            figures["frames_dropped"] = self.outlet.frames_dropped
        if self.last_stats is not None:
            figures["frames_presented"] = self.last_stats.frames_presented
            figures["frames_lost"] = self.last_stats.frames_lost
        return figures

    @property
    def wants_audio(self) -> bool:
        return self.info is not None and bool(self.info.peer_capabilities & Capability.AUDIO)


class Viewers:
    """At most ``limit`` sessions, in the order they started."""

    def __init__(self, limit: int = 1):
        if limit < 1:
            raise ValueError("a host serves at least one viewer")
        self.limit = limit
        self._sessions: tuple[Viewer, ...] = ()
        self._lock = threading.Lock()  # writers only; readers take the tuple as it is

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[Viewer]:
        return iter(self._sessions)

    def __bool__(self) -> bool:
        return bool(self._sessions)

    @property
    def full(self) -> bool:
        return len(self._sessions) >= self.limit

    def of(self, address) -> Viewer | None:
        """The session this datagram's source address belongs to, or None."""
        for viewer in self._sessions:
            if viewer.address == address:
                return viewer
        return None

    def list(self) -> tuple[Viewer, ...]:
        return self._sessions

    def first(self) -> Viewer | None:
        sessions = self._sessions
        return sessions[0] if sessions else None

    def is_first(self, viewer: Viewer | None) -> bool:
        sessions = self._sessions
        return viewer is not None and bool(sessions) and sessions[0] is viewer

    def add(self, viewer: Viewer) -> None:
        with self._lock:
            if len(self._sessions) >= self.limit:
                raise ValueError("the session table is full")
            self._sessions = (*self._sessions, viewer)

    def remove(self, viewer: Viewer) -> bool:
        """Take ``viewer`` out; True when it was the first (the next one, if
        any, is the first now)."""
        with self._lock:
            was_first = bool(self._sessions) and self._sessions[0] is viewer
            self._sessions = tuple(v for v in self._sessions if v is not viewer)
            return was_first

    def sound_session(self) -> SessionInfo | None:
        """The session the sound service runs for: the first viewer's, asking
        for sound when any viewer does (each gets it only if it asked), or
        None before the first viewer's session is set up."""
        first = self.first()
        if first is None or first.info is None:
            return None
        caps = first.info.peer_capabilities & ~Capability.AUDIO
        if any(v.wants_audio for v in self._sessions):
            caps |= Capability.AUDIO
        return replace(first.info, peer_capabilities=caps)

    def destinations(self) -> tuple[tuple | None, tuple]:
        """For the encode thread: the first viewer's address (sent inline) and
        the other viewers' outlets; (None, ()) when nobody watches."""
        sessions = self._sessions
        if not sessions:
            return None, ()
        return sessions[0].address, tuple(v.outlet for v in sessions[1:] if v.outlet is not None)
