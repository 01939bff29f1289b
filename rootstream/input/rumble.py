"""Host side of rumble: what games ask of the virtual pads -> what the client's motors do.

A game uploads FF_RUMBLE effects to a pad, then plays (with a replay count),
stops, re-uploads (SDL changes the strength of a playing effect this way),
erases them, and sets the pad's gain.  The client's controller has just two
motors and SDL sets them in one call (strong, weak, duration), so the host
folds a pad's playing effects into one ``Motors`` state and sends that state
whenever it changes: the strengths of the playing effects added up (capped)
and scaled by the gain, for as long as the longest of them still runs.
A state, not an edge, so a repeated message does no harm (the host sends each
twice: a lost stop would leave a motor running).

The kernel does not time uinput effects (ff-memless does, uinput does not),
so the duration is ours: ``length_ms`` x replay count from the play, 0 when
the effect's length is 0 (plays until stopped).  The effect's start delay
is not honoured (rumble effects from games and SDL have none).

``RumbleBook`` is plain bookkeeping (time is passed in); ``RumbleWatcher``
is the thread that waits on the pads' uinput fds, answers the kernel's
upload/erase requests at once (the game's EVIOCSFF blocks until then) and
calls its listener with each new state.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rootstream.input.uinput_ff import FfGamepad, FfRequest

MAX_MAGNITUDE = 0xFFFF


@dataclass(frozen=True, slots=True)
class Motors:
    """Both motors of one pad: 0..0xFFFF each, for ``duration_ms`` (0: until changed)."""

    strong: int = 0
    weak: int = 0
    duration_ms: int = 0

    @property
    def stopped(self) -> bool:
        return self.strong == 0 and self.weak == 0


STOPPED = Motors()


class RumbleBook:
    """One pad's uploaded and playing effects and its gain."""

    def __init__(self) -> None:
        self.effects: dict[int, tuple[int, int, int]] = {}  # id -> strong, weak, length_ms
        self.playing: dict[int, int | None] = {}  # id -> end (ns), None: until stopped
        self.gain = MAX_MAGNITUDE
        self.motors = STOPPED

    def apply(self, request: FfRequest, now_ns: int) -> Motors | None:
        """Take one request; the new motor state when the client must hear of it."""
        action, effect_id = request.action, request.effect_id
        if action == "upload":
            self.effects[effect_id] = (request.strong, request.weak, request.length_ms)
            if effect_id not in self.playing:
                return None
        elif action == "erase":
            self.effects.pop(effect_id, None)
            if self.playing.pop(effect_id, 0) == 0:
                return None
        elif action == "gain":
            self.gain = min(request.count, MAX_MAGNITUDE)
            if not self.playing:
                return None
        elif action == "play":
            if effect_id not in self.effects:
                return None  # the kernel checks ids; this is belt and braces
            if request.count > 0:
                length = self.effects[effect_id][2]
                self.playing[effect_id] = (now_ns + length * request.count * 1_000_000
                                           if length else None)
            elif self.playing.pop(effect_id, 0) == 0:
                return None
        else:
            return None
        self.motors = self.state(now_ns)
        return self.motors

    def state(self, now_ns: int) -> Motors:
        for effect_id, end in list(self.playing.items()):
            if end is not None and end <= now_ns:
                del self.playing[effect_id]
        if not self.playing:
            return STOPPED
        strong = min(MAX_MAGNITUDE, sum(self.effects[i][0] for i in self.playing))
        weak = min(MAX_MAGNITUDE, sum(self.effects[i][1] for i in self.playing))
        ends = list(self.playing.values())
        duration = 0 if None in ends else max(1, (max(ends) - now_ns) // 1_000_000)
        return Motors(strong * self.gain // MAX_MAGNITUDE, weak * self.gain // MAX_MAGNITUDE,
                      duration)

    def silence(self) -> bool:
        """Forget what plays (the session ended); True when something was playing."""
        was_playing = bool(self.playing)
        self.playing.clear()
        self.motors = STOPPED
        return was_playing


# listener(pad index, new state, monotonic ns when the request was read)
RumbleListener = Callable[[int, Motors, int], None]


class RumbleWatcher:
    """A thread answering the force-feedback requests of the pads added to it."""

    def __init__(self, listener: RumbleListener | None = None) -> None:
        self.listener = listener
        self._pads: dict[int, tuple[FfGamepad, RumbleBook]] = {}
        self._lock = threading.Lock()  # held while a pad's fd is used or removed
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="rootstream-rumble", daemon=True)
        self._thread.start()

    def add(self, index: int, pad: FfGamepad) -> None:
        with self._lock:
            self._pads[index] = (pad, RumbleBook())
        self._wake()

    def remove(self, index: int) -> None:
        """Forget the pad; after this the watcher never touches its fd again."""
        with self._lock:
            self._pads.pop(index, None)
        self._wake()

    def silence(self) -> None:
        """The session ended: what played is forgotten, nothing is sent."""
        with self._lock:
            for _, book in self._pads.values():
                book.silence()

    def close(self) -> None:
        self._closed = True
        self._wake()
        self._thread.join(timeout=2)
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _wake(self) -> None:
        try:
            os.write(self._wake_write, b"\0")
        except BlockingIOError:
            pass  # already awake

    def _run(self) -> None:
        while not self._closed:
            with self._lock:
                by_fd = {pad.fd: (index, pad, book)
                         for index, (pad, book) in self._pads.items() if pad.fd >= 0}
            ready = select.select([self._wake_read, *by_fd], [], [])[0]
            if self._wake_read in ready:
                try:
                    os.read(self._wake_read, 64)
                except BlockingIOError:
                    pass
            changes = []
            with self._lock:
                for fd in ready:
                    if fd not in by_fd:
                        continue
                    index, pad, book = by_fd[fd]
                    if self._pads.get(index, (None,))[0] is not pad:
                        continue  # removed (and perhaps destroyed) meanwhile
                    try:
                        requests = pad.read_requests()
                    except OSError:
                        continue  # the device went away under us
                    read_ns = time.monotonic_ns()
                    for request in requests:
                        motors = book.apply(request, read_ns)
                        if motors is not None:
                            changes.append((index, motors, read_ns))
            listener = self.listener
            for index, motors, read_ns in changes:
                if listener is not None:
                    listener(index, motors, read_ns)
