"""The hand-off messages (rootstream/protocol/handoff.py): round trips, each defect's
message, and fuzzing.  The byte-exact vectors are in docs/PROTOCOL.md and
tests/test_protocol_vectors.py."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rootstream.protocol import ProtocolError, decode_control, encode_control
from rootstream.protocol.handoff import (
    ControlAction,
    ControlAnswer,
    ControlRequest,
    ControlState,
    HandoffMode,
    RequestOutcome,
    StateFlag,
)

STATES = [
    ControlState(),
    ControlState(0xFFFFFFFF, 65535, 65535, 65535, HandoffMode.LOCKED,
                 StateFlag.MAY_ASK | StateFlag.GUEST, 65535, RequestOutcome.BUSY,
                 "é" * 32, "x" * 64),
]


@pytest.mark.parametrize("message", [ControlRequest(ControlAction.ASK),
                                     ControlRequest(ControlAction.GIVE_BACK),
                                     ControlAnswer(1, 0), ControlAnswer(65535, 1), *STATES])
def test_round_trip(message):
    raw = encode_control(message)
    assert decode_control(raw) == message
    assert encode_control(decode_control(raw)) == raw
    # Fields appended by a newer peer are ignored.
    assert decode_control(raw + b"\x00\x01") == message


@pytest.mark.parametrize("raw, error", [
    (b"\x10", "control request message is truncated"),
    (b"\x10\x00", "control request message has an unknown action"),
    (b"\x10\x03", "control request message has an unknown action"),
    (b"\x11\x00\x01", "control answer message is truncated"),
    (b"\x11\x00\x01\x02", "control answer message has an unknown answer"),
    (b"\x12" + bytes(14), "control state message is truncated"),
    (b"\x12" + bytes(15), "control state message is truncated"),  # no holder_name
    (b"\x12" + bytes(15) + b"\x41" + b"a" * 65, "control state message has an over-long string"),
    (b"\x12" + bytes(15) + b"\x01\xff\x00", "control state message has a string that is not UTF-8"),
    (b"\x12" + bytes(15) + b"\x00", "control state message is truncated"),  # no pending_name
])
def test_each_defect_has_its_message(raw, error):
    with pytest.raises(ProtocolError, match=f"^{error}$"):
        decode_control(raw)


def test_you_hold_only_when_someone_holds():
    assert not ControlState(you=0, holder=0).you_hold
    assert ControlState(you=3, holder=3).you_hold
    assert not ControlState(you=3, holder=4).you_hold


@given(st.binary(max_size=200))
def test_fuzzed_payloads_parse_or_raise_protocol_error(body):
    for kind in (0x10, 0x11, 0x12):
        try:
            message = decode_control(bytes([kind]) + body)
        except ProtocolError:
            continue
        # What parses serialises to a prefix of what came (trailing bytes are ignored).
        assert (bytes([kind]) + body).startswith(encode_control(message))
