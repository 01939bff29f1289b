"""Rumble across the session: the host's sender and the client's SDL player.

Host: ``RumbleSender`` listens to the injector's RumbleWatcher and sends each
new motor state of a pad to the session's client as a CONTROL rumble
message, from the watcher's thread the moment the game's request was read
(never queued behind video).  It sends only to a client whose hello had
Capability.RUMBLE (an older client would count the unknown kind as an
error), and each message twice: it is a state, so a copy does no harm, and a
lost stop would leave the player's controller buzzing for the effect's
whole length.

Client: ``RumblePlayer`` plays each message on the SDL game controller the
client numbered ``index`` (SDL_GameControllerRumble: low frequency = the
strong motor, high frequency = the weak one).  SDL caps a duration at 65535
ms and reads 0 as "until changed", which is the message's own meaning of 0.
When the session ends, every controller it set rumbling is stopped.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable

from rootstream.backends import BackendProbe
from rootstream.protocol import PacketType
from rootstream.protocol.control import Rumble, encode_control

COPIES = 2
SDL_MAX_RUMBLE_MS = 0xFFFF


class RumbleSender:
    """Host: Motors states from a RumbleWatcher -> rumble messages to the client."""

    def __init__(self, counters: Counter[str] | None = None, copies: int = COPIES) -> None:
        self.counters = counters if counters is not None else Counter()
        self._copies = copies
        self._send = None
        self._watcher = None
        # (pad index, Rumble, monotonic ns the request was read) of the latest
        # message sent: what benchmarks and tests compare against the client.
        self.last_sent: tuple[int, Rumble, int] | None = None

    def attach(self, watcher) -> None:
        """The injector's RumbleWatcher (None: this injector's pads cannot rumble)."""
        self._watcher = watcher
        if watcher is not None:
            watcher.listener = self._on_motors

    def start(self, send) -> None:
        """A session began; ``send`` is None when its client did not ask for rumble."""
        self._send = send

    def stop(self) -> None:
        """The session ended: nothing more is sent, and what played is forgotten."""
        self._send = None
        if self._watcher is not None:
            self._watcher.silence()

    def _on_motors(self, index: int, motors, read_ns: int) -> None:
        send = self._send
        if send is None:
            self.counters["rumble_unsent"] += 1
            return
        message = Rumble(index, motors.strong, motors.weak, min(motors.duration_ms, 0xFFFFFFFF))
        payload = encode_control(message)
        for _ in range(self._copies):
            send(PacketType.CONTROL, payload)
        self.last_sent = (index, message, read_ns)
        self.counters["rumble_sent"] += 1


def _sdl_rumble(handle, strong: int, weak: int, duration_ms: int) -> int:
    import sdl2

    return sdl2.SDL_GameControllerRumble(handle, strong, weak, duration_ms)


class RumblePlayer:
    """Client: rumble messages -> the SDL game controllers.

    ``controller(index)`` returns the SDL_GameController handle the client
    numbered ``index`` (None when there is none); ``rumble`` is the SDL call
    (tests keep it).  Called from the receive thread: SDL locks its joystick
    list inside SDL_GameControllerRumble, so no hop to the window's thread
    (and its frame of delay) is needed.
    """

    def __init__(self, controller: Callable[[int], object | None],
                 rumble: Callable[[object, int, int, int], int] = _sdl_rumble) -> None:
        self._controller = controller
        self._rumble = rumble
        self._lock = threading.Lock()
        self._rumbling: set[int] = set()  # indices set rumbling
        self.counters: Counter[str] = Counter()

    def play(self, message: Rumble) -> bool:
        handle = self._controller(message.index)
        if handle is None:
            self.counters["rumble_no_controller"] += 1
            return False
        duration = min(message.duration_ms, SDL_MAX_RUMBLE_MS)
        with self._lock:
            if self._rumble(handle, message.strong, message.weak, duration) != 0:
                self.counters["rumble_unsupported"] += 1  # this pad has no motors
                return False
            if message.strong or message.weak:
                self._rumbling.add(message.index)
            else:
                self._rumbling.discard(message.index)
        self.counters["rumble_played"] += 1
        return True

    def stop_all(self) -> None:
        """The session ended: no controller keeps rumbling."""
        with self._lock:
            rumbling, self._rumbling = self._rumbling, set()
            for index in rumbling:
                # Looked up again: a controller unplugged meanwhile has no handle.
                handle = self._controller(index)
                if handle is not None:
                    self._rumble(handle, 0, 0, 0)


def probe_rumble(uinput_path: str = "/dev/uinput") -> list[BackendProbe]:
    """`rootstream doctor`: can this machine's host send rumble, its client play it?"""
    try:
        os.close(os.open(uinput_path, os.O_RDWR | os.O_NONBLOCK))
        host = (True, "games' rumble on the virtual gamepads goes to the client")
    except OSError as exc:
        host = (False, f"{uinput_path} is not readable and writable ({exc.strerror}): "
                       "install udev/60-rootstream.rules and join the input group")
    try:
        import sdl2

        sdl2.SDL_GameControllerRumble  # noqa: B018 (SDL 2.0.9+)
        client = (True, "rumble plays on the controllers SDL opens")
    except (ImportError, AttributeError) as exc:
        client = (False, f"SDL game-controller rumble is missing: {exc}")
    return [BackendProbe("host", *host), BackendProbe("client", *client)]
