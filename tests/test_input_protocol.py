"""INPUT payload codec: byte-exact vectors, round trips, every prefix, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rootstream.errors import ProtocolError
from rootstream.protocol.input import (
    BTN_LEFT,
    BTN_TASK,
    GAMEPAD_BUTTON_BIT,
    MAX_EVENTS,
    MAX_GAMEPADS,
    MAX_HELD,
    MAX_PAYLOAD,
    AbsoluteMotion,
    ButtonEvent,
    GamepadAdded,
    GamepadRemoved,
    GamepadState,
    HeldSnapshot,
    KeyEvent,
    RelativeMotion,
    WheelEvent,
    decode_input,
    encode_input,
    is_key_code,
)

# (hex payload, events) — the same vectors are printed in docs/INPUT.md.
VECTORS = [
    ("0101001e01", [KeyEvent(30, True)]),  # KEY_A down
    ("0101001e00", [KeyEvent(30, False)]),
    ("020502800168050002d002011001",  # move to the centre of 1280x720, then press BTN_LEFT
     [AbsoluteMotion(640, 360, 1280, 720), ButtonEvent(BTN_LEFT, True)]),
    ("0203ff88003c04fffb012c", [WheelEvent(-120, 60), RelativeMotion(-5, 300)]),
    ("03070006000000000980007fff0001ffff000000ff080f",
     [GamepadAdded(0),
      GamepadState(0, GAMEPAD_BUTTON_BIT["a"] | GAMEPAD_BUTTON_BIT["y"],
                   -32768, 32767, 1, -1, 0, 255),
      GamepadRemoved(15)]),
    ("010903001d002a0110", [HeldSnapshot((29, 42, 0x110))]),  # LEFTCTRL, LEFTSHIFT, BTN_LEFT
    ("010900", [HeldSnapshot(())]),
]


@pytest.mark.parametrize("hex_payload,events", VECTORS)
def test_vectors_are_byte_exact_both_ways(hex_payload, events):
    payload = bytes.fromhex(hex_payload)
    assert encode_input(events) == payload
    assert decode_input(payload) == events
    assert decode_input(memoryview(payload)) == events


@pytest.mark.parametrize("hex_payload,events", VECTORS)
def test_every_proper_prefix_is_truncated(hex_payload, events):
    payload = bytes.fromhex(hex_payload)
    for cut in range(len(payload)):
        with pytest.raises(ProtocolError, match="^INPUT payload is truncated$"):
            decode_input(payload[:cut])


@pytest.mark.parametrize(
    "hex_payload,message",
    [
        ("00", "INPUT payload has no events"),
        ("41" + "0101001e01" * 65, "INPUT payload has too many events"),
        ("0101001e0100", "INPUT payload has trailing bytes"),
        ("01ff", "INPUT event kind is unknown"),
        ("0100", "INPUT event kind is unknown"),
        ("0101001e02", "INPUT key state is not 0 or 1"),
        ("0101000001", "INPUT key code is out of range"),
        ("0101011001", "INPUT key code is out of range"),  # BTN_LEFT is not a key
        ("0101030001", "INPUT key code is out of range"),
        ("0102001e01", "INPUT mouse button code is out of range"),
        ("0102011801", "INPUT mouse button code is out of range"),
        ("01050500000000050002d0", "INPUT absolute motion is outside the stream"),  # x == width
        ("0105000000000000000000", "INPUT absolute motion is outside the stream"),  # 0x0 stream
        ("01061000000000000000000000000000000000", "INPUT gamepad index is out of range"),
        ("01060000200000000000000000000000000000", "INPUT gamepad has reserved button bits set"),
        ("010600000000000000000000000000ffff0000", "INPUT gamepad trigger is negative"),
        ("010710", "INPUT gamepad index is out of range"),
        ("010810", "INPUT gamepad index is out of range"),
        ("010902002a001d", "INPUT snapshot codes are not strictly ascending"),
        ("010902001d001d", "INPUT snapshot codes are not strictly ascending"),
        ("0109010130", "INPUT snapshot code is out of range"),  # BTN_SOUTH is a gamepad button
        ("0109ff", "INPUT snapshot has too many codes"),
        ("01" + "00" * MAX_PAYLOAD, "INPUT payload is too large"),
    ],
)
def test_invalid_payloads_have_fixed_messages(hex_payload, message):
    with pytest.raises(ProtocolError, match=f"^{message}$"):
        decode_input(bytes.fromhex(hex_payload))


@pytest.mark.parametrize(
    "events,message",
    [
        ([], "INPUT payload has no events"),
        ([KeyEvent(30, True)] * (MAX_EVENTS + 1), "INPUT payload has too many events"),
        ([KeyEvent(0x110, True)], "INPUT key code is out of range"),
        ([ButtonEvent(30, True)], "INPUT mouse button code is out of range"),
        ([RelativeMotion(40000, 0)], "INPUT value does not fit 16 bits"),
        ([WheelEvent(0, -40000)], "INPUT value does not fit 16 bits"),
        ([AbsoluteMotion(10, 10, 10, 20)], "INPUT absolute motion is outside the stream"),
        ([GamepadState(MAX_GAMEPADS)], "INPUT gamepad index is out of range"),
        ([GamepadState(0, buttons=1 << 31)], "INPUT gamepad has reserved button bits set"),
        ([GamepadState(0, lt=-1)], "INPUT gamepad trigger is negative"),
        ([HeldSnapshot((42, 29))], "INPUT snapshot codes are not strictly ascending"),
        ([HeldSnapshot(tuple(range(1, MAX_HELD + 2)))], "INPUT snapshot has too many codes"),
        ([HeldSnapshot(tuple(range(1, MAX_HELD + 1)))] * 6, "INPUT payload is too large"),
        (["KEY_A"], "INPUT event kind is unknown"),
    ],
)
def test_encoder_refuses_what_the_wire_cannot_carry(events, message):
    with pytest.raises(ProtocolError, match=f"^{message}$"):
        encode_input(events)


def test_a_full_payload_of_the_largest_events_fits():
    events = [GamepadState(i % MAX_GAMEPADS, 1, 2, 3, 4, 5, 6, 7) for i in range(MAX_EVENTS)]
    payload = encode_input(events)
    assert len(payload) == 1 + 18 * MAX_EVENTS <= MAX_PAYLOAD
    assert decode_input(payload) == events


i16 = st.integers(-0x8000, 0x7FFF)
key_codes = st.integers(1, 0x2FF).filter(is_key_code)
snapshot_codes = st.lists(
    st.one_of(key_codes, st.integers(BTN_LEFT, BTN_TASK)), max_size=MAX_HELD, unique=True
).map(lambda codes: tuple(sorted(codes)))


@st.composite
def absolute_motion(draw):
    width = draw(st.integers(1, 0xFFFF))
    height = draw(st.integers(1, 0xFFFF))
    return AbsoluteMotion(draw(st.integers(0, width - 1)), draw(st.integers(0, height - 1)),
                          width, height)


events_strategy = st.one_of(
    st.builds(KeyEvent, key_codes, st.booleans()),
    st.builds(ButtonEvent, st.integers(BTN_LEFT, BTN_TASK), st.booleans()),
    st.builds(WheelEvent, i16, i16),
    st.builds(RelativeMotion, i16, i16),
    absolute_motion(),
    st.builds(GamepadState, st.integers(0, MAX_GAMEPADS - 1), st.integers(0, (1 << 21) - 1),
              i16, i16, i16, i16, st.integers(0, 0x7FFF), st.integers(0, 0x7FFF)),
    st.builds(GamepadAdded, st.integers(0, MAX_GAMEPADS - 1)),
    st.builds(GamepadRemoved, st.integers(0, MAX_GAMEPADS - 1)),
    st.builds(HeldSnapshot, snapshot_codes),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(events_strategy, min_size=1, max_size=8))
def test_round_trip_of_any_valid_events(events):
    payload = encode_input(events)
    assert decode_input(payload) == events
    assert encode_input(decode_input(payload)) == payload


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=MAX_PAYLOAD + 8))
def test_random_bytes_decode_or_raise_protocol_error_only(data):
    try:
        events = decode_input(data)
    except ProtocolError:
        return
    # Whatever decodes is canonical: encoding it gives back the same bytes.
    assert encode_input(events) == data


@settings(max_examples=200, deadline=None)
@given(st.lists(events_strategy, min_size=1, max_size=4), st.data())
def test_mutated_valid_payloads_never_escape_protocol_error(events, data):
    payload = bytearray(encode_input(events))
    position = data.draw(st.integers(0, len(payload) - 1))
    payload[position] = data.draw(st.integers(0, 255))
    try:
        decoded = decode_input(bytes(payload))
    except ProtocolError:
        return
    assert encode_input(decoded) == bytes(payload)
