"""Room codes (rootstream/crypto/room.py and the gate): the pairing PAKE keyed by the
room code, admitting guest after guest, burned by 3 wrong tries, never interchangeable
with a pairing code, and nothing stored."""

from __future__ import annotations

import pytest
from test_pairing import CLIENT, HOST, MALLORY, run

from rootstream.crypto.gate import HostGate
from rootstream.crypto.handshake import HandshakeInitiator
from rootstream.crypto.identity import Identity
from rootstream.crypto.pairing import (
    KIND_ROOM_START,
    REASON_BURNED,
    REASON_RATE_LIMITED,
    REASON_WRONG_CODE,
    PairingClient,
    PairingFailed,
    PairingHost,
    PairingMessage,
)
from rootstream.crypto.room import GuestList, RoomClient, RoomHost
from rootstream.crypto.trust import TrustStore

CODE = "654321"


def test_a_room_code_admits_guest_after_guest_and_stores_nothing():
    room = RoomHost(HOST, CODE, 0.0, name="den-pc")
    for n, guest in enumerate((CLIENT, MALLORY, Identity(bytes(range(96, 128))))):
        client = RoomClient(guest, CODE, name=f"guest{n}")
        assert run(room, client, now=2.0 * n) is None
        assert client.result.public_key == HOST.public_key
        admitted = room.take_guest()
        assert (admitted.public_key, admitted.name) == (guest.public_key, f"guest{n}")
        assert room.take_guest() is None
        assert room.tries_left == 3  # a right code uses no try
    assert not room.burned and not room.expired(1e9)  # a room lasts as long as its host


def test_three_wrong_tries_burn_the_room_code():
    room = RoomHost(HOST, CODE, 0.0)
    for n in range(3):
        failed = run(room, RoomClient(CLIENT, "111111"), now=2.0 * n)
        assert failed.reason == REASON_WRONG_CODE
    assert room.burned
    failed = run(room, RoomClient(CLIENT, CODE), now=10.0)  # even the right code now
    assert failed.reason == REASON_BURNED and room.take_guest() is None


def test_room_tries_are_rate_limited_without_using_a_try():
    room = RoomHost(HOST, CODE, 0.0)
    assert run(room, RoomClient(CLIENT, CODE), now=0.0) is None
    failed = run(room, RoomClient(MALLORY, CODE), now=0.5)
    assert failed.reason == REASON_RATE_LIMITED and room.tries_left == 3


def test_a_room_code_and_a_pairing_code_never_stand_in_for_each_other():
    # The same digits: a pairing host ignores a room START, and a room host a pairing START.
    pairing = PairingHost(HOST, CODE, 0.0)
    room_start = RoomClient(CLIENT, CODE).start()
    assert PairingMessage.parse(room_start).kind == KIND_ROOM_START
    with pytest.raises(Exception, match="no current exchange|out of order"):
        pairing.receive(room_start, 0.0)
    room = RoomHost(HOST, CODE, 0.0)
    with pytest.raises(Exception, match="no current exchange|out of order"):
        room.receive(PairingClient(CLIENT, CODE).start(), 0.0)
    # And a room START relabelled as a pairing START runs under the other channel:
    # the client cannot open the host's box, i.e. the code reads as wrong.
    client = RoomClient(CLIENT, CODE)
    client.START_KIND = 0x20
    client._start = bytes([0x20]) + client._start[1:]
    assert run(pairing, client).reason == REASON_WRONG_CODE


def test_many_guests_keep_memory_bounded():
    room = RoomHost(HOST, CODE, 0.0)
    for n in range(3 * RoomHost.MAX_EXCHANGES):
        assert run(room, RoomClient(CLIENT, CODE), now=2.0 * n) is None
        room.take_guest()
    assert len(room._exchanges) <= RoomHost.MAX_EXCHANGES
    guests = GuestList(limit=2)
    for n in range(3):
        guests.add(bytes([n]) * 32, f"g{n}")
    assert len(guests) == 2 and guests.get(bytes(32)) is None and guests.get(b"\2" * 32) == "g2"


def _gate(tmp_path, **options):
    log: list[str] = []
    gate = HostGate(HOST, TrustStore.open(tmp_path), log=log.append, now=0.0, **options)
    return gate, log


def _exchange(gate, client, now=0.0):
    message = client.start()
    while client.result is None:
        answer = gate.receive(message, ("127.0.0.1", 5), now)
        if answer.reply is None:
            return None
        try:
            message = client.receive(answer.reply)
        except PairingFailed as exc:
            if exc.reply:  # the wrong guest's REJECT, as join_room sends it
                gate.receive(exc.reply, ("127.0.0.1", 5), now)
            return None
        if message is None:
            break
    return client.result


def test_the_gate_admits_a_guest_whose_handshake_is_then_marked_guest(tmp_path):
    gate, log = _gate(tmp_path, room=True, pairing=True)
    assert gate.room_code and gate.pairing_code
    assert any("room code" in line for line in log)
    # Before joining, the guest's handshake is refused like any stranger's.
    refused = gate.receive(HandshakeInitiator(CLIENT, HOST.public_key).start(), ("h", 1), 0.0)
    assert refused.keys is None
    assert _exchange(gate, RoomClient(CLIENT, gate.room_code, name="guesty"), now=1.0)
    assert any("guest guesty" in line for line in log)
    answer = gate.receive(HandshakeInitiator(CLIENT, HOST.public_key).start(), ("h", 2), 2.0)
    assert answer.keys is not None and answer.guest and answer.peer_name == "guesty"
    # Nothing was stored: a new host (a new gate) does not know the guest.
    assert TrustStore.open(tmp_path).list() == []
    gate2, _ = _gate(tmp_path)
    again = gate2.receive(HandshakeInitiator(CLIENT, HOST.public_key).start(), ("h", 3), 3.0)
    assert again.keys is None


def test_a_paired_client_is_never_a_guest(tmp_path):
    gate, _ = _gate(tmp_path, room=True)
    gate.trust.add("laptop", CLIENT.public_key)
    assert _exchange(gate, RoomClient(CLIENT, gate.room_code), now=1.0)
    answer = gate.receive(HandshakeInitiator(CLIENT, HOST.public_key).start(), ("h", 2), 2.0)
    assert answer.keys is not None and not answer.guest and answer.peer_name == "laptop"


def test_wrong_room_codes_burn_it_and_the_gate_shows_a_new_one(tmp_path):
    gate, log = _gate(tmp_path, room=True)
    first = gate.room_code
    wrong = "000000" if first != "000000" else "111111"
    for n in range(3):
        assert _exchange(gate, RoomClient(CLIENT, wrong), now=2.0 * n) is None
    assert gate.room_code != first and any("burned" in line for line in log)
    assert _exchange(gate, RoomClient(CLIENT, first), now=10.0) is None
    assert _exchange(gate, RoomClient(CLIENT, gate.room_code), now=12.0) is not None


def test_without_room_the_gate_says_nothing_to_a_room_start(tmp_path):
    gate, _ = _gate(tmp_path, pairing=True)
    assert gate.receive(RoomClient(CLIENT, CODE).start(), ("h", 1), 0.0).reply is None
