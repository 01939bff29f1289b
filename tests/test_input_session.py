"""Held-state bookkeeping and the host's InputSession, driven through the record injector."""

from __future__ import annotations

from rootstream.input import InputSession, open_injector
from rootstream.input.injector import WheelDetents
from rootstream.protocol.input import (
    BTN_LEFT,
    BTN_RIGHT,
    ButtonEvent,
    GamepadAdded,
    GamepadRemoved,
    GamepadState,
    HeldSnapshot,
    KeyEvent,
    RelativeMotion,
    encode_input,
)

KEY_A, KEY_B, KEY_LEFTCTRL = 30, 48, 29


def make():
    injector = open_injector("record")
    return injector, InputSession(injector)


def test_duplicated_press_is_injected_once():
    injector, session = make()
    session.apply([KeyEvent(KEY_A, True), KeyEvent(KEY_A, True)])
    session.apply([KeyEvent(KEY_A, False), KeyEvent(KEY_A, False)])
    assert injector.events == [KeyEvent(KEY_A, True), KeyEvent(KEY_A, False)]
    assert injector.counters["key_unchanged"] == 2


def test_snapshot_releases_what_the_client_no_longer_holds_and_presses_what_it_does():
    injector, session = make()
    session.apply([KeyEvent(KEY_A, True), ButtonEvent(BTN_LEFT, True)])
    injector.events.clear()
    session.apply([HeldSnapshot((KEY_LEFTCTRL, BTN_RIGHT))])
    assert injector.events == [KeyEvent(KEY_A, False), ButtonEvent(BTN_LEFT, False),
                               KeyEvent(KEY_LEFTCTRL, True), ButtonEvent(BTN_RIGHT, True)]
    assert injector.held_keys == {KEY_LEFTCTRL} and injector.held_buttons == {BTN_RIGHT}
    injector.events.clear()
    session.apply([HeldSnapshot((KEY_LEFTCTRL, BTN_RIGHT))])
    assert injector.events == []  # a snapshot that agrees changes nothing


def test_stale_and_duplicate_sequences_are_dropped_across_the_wrap():
    injector, session = make()
    assert session.apply([KeyEvent(KEY_A, True)], sequence=65535)
    assert session.apply([KeyEvent(KEY_A, False)], sequence=0)  # wrapped: newer
    assert not session.apply([KeyEvent(KEY_A, True)], sequence=65535)  # late
    assert not session.apply([KeyEvent(KEY_A, True)], sequence=0)  # duplicate
    assert injector.held_keys == set()
    assert session.counters["stale_dropped"] == 2


def test_malformed_payload_is_counted_and_dropped():
    injector, session = make()
    assert not session.apply_payload(b"\x01\x01\x00")
    assert session.counters["malformed_dropped"] == 1
    assert session.apply_payload(encode_input([RelativeMotion(3, 4)]), sequence=9)
    assert injector.events == [RelativeMotion(3, 4)]


def test_client_gone_releases_everything_and_forgets_the_sequence():
    injector, session = make()
    session.apply([KeyEvent(KEY_A, True), KeyEvent(KEY_B, True), ButtonEvent(BTN_LEFT, True),
                   GamepadState(1, buttons=1, lx=1000)], sequence=500)
    injector.events.clear()
    session.on_client_gone()
    assert injector.events == [KeyEvent(KEY_A, False), KeyEvent(KEY_B, False),
                               ButtonEvent(BTN_LEFT, False), GamepadState(1)]
    # A new client starts its own sequence numbers.
    assert session.apply([KeyEvent(KEY_A, True)], sequence=1)


def test_gamepad_state_for_an_unknown_controller_adds_it():
    injector, _ = make()
    injector.inject(GamepadState(2, buttons=3))
    injector.inject(GamepadAdded(2))  # late duplicate: no second device
    injector.inject(GamepadState(2, buttons=3))  # unchanged: nothing written
    injector.inject(GamepadRemoved(2))
    injector.inject(GamepadRemoved(2))
    assert injector.events == [GamepadAdded(2), GamepadState(2, buttons=3), GamepadRemoved(2)]


def test_close_releases_and_removes_then_is_idempotent():
    injector, session = make()
    session.apply([KeyEvent(KEY_A, True), GamepadAdded(0)])
    injector.events.clear()
    session.close()
    session.close()
    assert injector.events == [KeyEvent(KEY_A, False), GamepadRemoved(0)]
    assert injector.closed


def test_one_flush_per_datagram():
    injector, session = make()
    session.apply([KeyEvent(KEY_A, True), KeyEvent(KEY_B, True), RelativeMotion(1, 1)])
    assert injector.flushes == 1


def test_wheel_detents_carry_the_remainder_with_its_sign():
    detents = WheelDetents()
    assert detents.add(60, -60) == (0, 0)
    assert detents.add(60, -60) == (1, -1)
    assert detents.add(-30, 0) == (0, 0)
    assert detents.add(-90, 0) == (-1, 0)
    assert detents.add(359, 0) == (2, 0)
    assert detents.add(1, 0) == (1, 0)
