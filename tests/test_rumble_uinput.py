"""Rumble on a real kernel: a game's force feedback on the host's virtual pad -> rumble messages.

Runs where /dev/uinput exists (the test VM).  The host's input service opens
the uinput injector as in a session, the client's controller arrives as
GamepadAdded, and a "game" (tests/ff_game.py: EVIOCSFF and EV_FF writes on the
pad's /dev/input/event* node, as SDL does) uploads, plays, changes, stops and
erases FF_RUMBLE effects.  What the host sends its client is decoded and
compared: the same strengths and duration, each message twice, a stop when
the effect stops or is erased, the gain applied, nothing after the session
ends and nothing to a client that did not ask for rumble.
"""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from evdev_reader import event_node
from ff_game import Game

from rootstream.input.host_service import HostInput
from rootstream.protocol import Capability, Config, PacketType, decode_control
from rootstream.protocol.control import Rumble
from rootstream.protocol.input import GamepadAdded
from rootstream.session import SessionInfo

pytestmark = pytest.mark.uinput

_names = itertools.count()


class Client:
    """The session's send(): every rumble message the host sends, decoded."""

    def __init__(self) -> None:
        self.messages: list[Rumble] = []
        self._arrived = threading.Condition()

    def send(self, ptype: PacketType, payload: bytes) -> None:
        assert ptype == PacketType.CONTROL
        with self._arrived:
            self.messages.append(decode_control(payload))
            self._arrived.notify_all()

    def next(self, timeout: float = 10.0) -> Rumble:
        """The next distinct message (each is sent twice: the copy is checked and dropped)."""
        with self._arrived:
            assert self._arrived.wait_for(lambda: len(self.messages) >= 2, timeout), \
                f"the host sent {self.messages} within {timeout} s"
            first, copy = self.messages[:2]
            del self.messages[:2]
        assert first == copy
        return first


def start(capabilities: int):
    prefix = f"rootstream-ff-{next(_names)}"
    service = HostInput("uinput", options={"name_prefix": prefix}, log=lambda line: None)
    client = Client()
    service.session_started(SessionInfo(("127.0.0.1", 9), 1, "t", Config(), capabilities),
                            client.send)
    assert service.session is not None, service.unavailable
    assert service.offers & Capability.RUMBLE
    service.session.apply([GamepadAdded(0)])
    game = Game(event_node(f"{prefix} gamepad 0"))
    return service, client, game


def test_a_games_rumble_reaches_the_client_with_its_strengths_and_duration():
    service, client, game = start(Capability.RUMBLE)
    try:
        effect = game.upload(0xC000, 0x4000, 500)
        assert client.messages == []  # an upload alone plays nothing
        game.play(effect)
        message = client.next()
        assert (message.index, message.strong, message.weak) == (0, 0xC000, 0x4000)
        assert 490 <= message.duration_ms <= 500
        game.stop(effect)
        assert client.next() == Rumble(0, 0, 0, 0)

        game.play(effect, 3)  # a replay count: three lengths
        assert 1400 <= client.next().duration_ms <= 1500
        game.upload(0x2000, 0xFFFF, 500, effect_id=effect)  # SDL's way to change a playing one
        changed = client.next()
        assert (changed.strong, changed.weak) == (0x2000, 0xFFFF)
        game.gain(0x8000)
        halved = client.next()
        assert (halved.strong, halved.weak) == (0x1000, 0x8000)
        game.erase(effect)  # erasing a playing effect stops it
        assert client.next() == Rumble(0, 0, 0, 0)

        endless = game.upload(0xFFFF, 0, 0)  # length 0: until stopped
        game.play(endless)
        assert client.next() == Rumble(0, 0x8000, 0, 0)  # the gain still applies
        service.session_ended("bye")
        game.stop(endless)
        game.play(endless)
        time.sleep(0.5)
        assert client.messages == []
        assert service.counters["rumble_unsent"] == 1  # the play; the stop found it silenced
    finally:
        game.close()
        service.close()


def test_nothing_is_sent_to_a_client_that_did_not_ask_for_rumble():
    service, client, game = start(0)
    try:
        effect = game.upload(0xFFFF, 0xFFFF, 100)  # the upload still succeeds for the game
        game.play(effect)
        time.sleep(0.5)
        assert client.messages == []
        assert service.counters["rumble_unsent"] == 1
    finally:
        game.close()
        service.close()
