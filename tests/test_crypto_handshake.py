"""The Noise IK session handshake: spec vectors, key agreement, refusals."""

from __future__ import annotations

import nacl.bindings
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rootstream.crypto.handshake import (
    INIT_SIZE,
    REASON_FULL,
    REASON_NOT_PAIRED,
    REASON_UNKNOWN_HOST_KEY,
    HandshakeInitiator,
    HandshakeRefused,
    HandshakeResponder,
    Refuser,
    ReplayGuard,
    refusal_message,
)
from rootstream.crypto.identity import Identity
from rootstream.crypto.noise import NoiseIK
from rootstream.crypto.trust import TrustedPeer
from rootstream.errors import CryptoError
from rootstream.protocol.control import CryptoMessage, decode_control

HOST = Identity(bytes(range(32)))
CLIENT = Identity(bytes(range(32, 64)))
STRANGER = Identity(bytes(range(64, 96)))
HEADER = b"ROOT" + bytes(12)


def trusted(*identities):
    peers = {i.public_key: TrustedPeer(f"peer{n}", i.public_key, 0.0)
             for n, i in enumerate(identities)}
    return peers.get


def handshake(client=CLIENT, host=HOST, lookup=None, guard=None, now_ns=1):
    initiator = HandshakeInitiator(client, host.public_key, now_ns)
    responder = HandshakeResponder(host, lookup or trusted(client), guard)
    initiator.receive(responder.receive(initiator.start()))
    return initiator, responder


# --- the Noise layer against the public cacophony vectors -----------------
# Noise_IK_25519_ChaChaPoly_SHA256 from the cacophony test-vector file that
# Noise libraries share (prologue "John Galt").  Messages 0-1 are the
# handshake, 2-3 are transport messages under the split() keys, so together
# they pin every hash, DH and key-derivation step.  (The file's handshake_hash
# field is not used: it equals h after message 1 there.)
CACOPHONY = {
    "init_static": "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1",
    "init_ephemeral": "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a",
    "resp_static": "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893",
    "resp_ephemeral": "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b",
    "messages": [
        ("4c756477696720766f6e204d69736573",
         "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944718da798efbcd915"
         "28520204f904b9bd6c7413dccdc214d951e15253e39987f18146e8cd0873654207148333479d4d16"
         "c289f0294b29960a72f48e0b7bba2e89083169825e59642148d492020664ccf7"),
        ("4d757272617920526f746862617264",
         "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f1448088435361e70b2ed446e6"
         "c9ec387d1d6b3b840f194e373979d241b203c4acafccf5"),
        ("462e20412e20486179656b", "050e9f3c8fac16b68dbce8f8c4bfbf6617c897f9ada4aa29aa19c8"),
        ("4361726c204d656e676572", "344233a6cabb7141d80f3da2fedc311d9646bbb0f505afe403a667"),
    ],
}


def test_noise_ik_matches_cacophony_vectors():
    v, h = CACOPHONY, bytes.fromhex
    resp_static = Identity(h(v["resp_static"]))
    initiator = NoiseIK(initiator=True, static=Identity(h(v["init_static"])),
                        prologue=b"John Galt", remote_static=resp_static.public_key,
                        ephemeral_secret=h(v["init_ephemeral"]))
    responder = NoiseIK(initiator=False, static=resp_static, prologue=b"John Galt",
                        ephemeral_secret=h(v["resp_ephemeral"]))
    (p0, c0), (p1, c1), (p2, c2), (p3, c3) = [(h(p), h(c)) for p, c in v["messages"]]
    assert initiator.write_message_1(p0) == c0
    assert responder.read_message_1(c0) == p0
    assert responder.write_message_2(p1) == c1
    assert initiator.read_message_2(c1) == p1
    assert initiator.handshake_hash == responder.handshake_hash
    k1, k2 = initiator.split()
    assert responder.split() == (k1, k2)
    encrypt = nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt
    assert encrypt(p2, b"", bytes(12), k1) == c2
    assert encrypt(p3, b"", bytes(12), k2) == c3


# --- rootstream's handshake ------------------------------------------------
# Pinned in docs/SECURITY.md (fixed static keys, ephemerals and timestamp).
INIT = (
    "2801493e82fc74464a59268817623d2053c5eb8e2cc4a988b4fee179ec6b010d531d920856d94f4fa0"
    "21370aa51d016fb7e71a7dda88b3372976f95aea8fb99ae4fa68ed71f30c2498e9377b129588841275"
    "1b2717f6964f6673d37d9c383d942639e7be0afa02168bcc"
)
RESPONSE = (
    "2901605a725d2a4adfeeb1a29e17edd621c1b7593ee8cdbc44ac6c4ab6e2f805d23caacc63db1a23ba"
    "ca741211865c36919e"
)
SESSION_ID = "bc9429f6eef8634016790a02a233f79508538ad5fd3ac5725eaacf369cc2b1af"
CLIENT_TO_HOST = "869af45b8af48b712df2ea11b8d98132d210fe86c17c046770af177f1ce0cae7"
HOST_TO_CLIENT = "cc9dafcd9455bb70018e0ece530568b1cd72242e91aeb39fe6de2a35249e154d"


def test_byte_exact_handshake_vector():
    initiator = HandshakeInitiator(CLIENT, HOST.public_key, 1_700_000_000_000_000_000,
                                   _ephemeral=bytes(range(0x80, 0xA0)))
    responder = HandshakeResponder(HOST, trusted(CLIENT), _ephemeral=bytes(range(0xA0, 0xC0)))
    assert initiator.start().hex() == INIT
    assert responder.receive(initiator.start()).hex() == RESPONSE
    initiator.receive(bytes.fromhex(RESPONSE))
    for keys, tx, rx in ((initiator.keys, CLIENT_TO_HOST, HOST_TO_CLIENT),
                         (responder.keys, HOST_TO_CLIENT, CLIENT_TO_HOST)):
        assert (keys.session_id.hex(), keys.tx_key.hex(), keys.rx_key.hex()) == (SESSION_ID, tx, rx)


def test_keys_match_and_differ_per_direction():
    initiator, responder = handshake()
    ck, hk = initiator.keys, responder.keys
    assert ck.tx_key == hk.rx_key and ck.rx_key == hk.tx_key
    assert ck.tx_key != ck.rx_key
    assert ck.session_id == hk.session_id and len(ck.session_id) == 32
    assert ck.peer_public_key == HOST.public_key and hk.peer_public_key == CLIENT.public_key
    assert responder.peer.name == "peer0"
    # Sealers/openers built from the keys talk to each other in both directions.
    assert hk.opener().open(HEADER, ck.sealer().seal(HEADER, b"input")) == b"input"
    assert ck.opener().open(HEADER, hk.sealer().seal(HEADER, b"video")) == b"video"
    assert "tx_key" not in repr(ck)


def test_every_connection_gets_fresh_keys():
    first, _ = handshake(now_ns=1)
    second, _ = handshake(now_ns=2)
    assert first.keys.tx_key != second.keys.tx_key
    assert first.keys.session_id != second.keys.session_id


def test_untrusted_client_is_refused():
    initiator = HandshakeInitiator(STRANGER, HOST.public_key)
    responder = HandshakeResponder(HOST, trusted(CLIENT))
    with pytest.raises(HandshakeRefused) as info:
        responder.receive(initiator.start())
    assert info.value.reason == REASON_NOT_PAIRED
    assert responder.keys is None
    with pytest.raises(HandshakeRefused, match="not paired") as info:
        initiator.receive(refusal_message(REASON_NOT_PAIRED))
    assert "rootstream pair" in info.value.hint
    assert initiator.keys is None


def test_a_full_host_refuses_in_three_bytes_and_says_what_to_do():
    # docs/SECURITY.md's REFUSED row: 2a 01, reason 4 (host --viewers N has N watching).
    assert refusal_message(REASON_FULL) == bytes.fromhex("2a0104")
    initiator = HandshakeInitiator(CLIENT, HOST.public_key)
    assert len(initiator.start()) > 3  # never more bytes than the INIT
    with pytest.raises(HandshakeRefused, match="the host is full") as info:
        initiator.receive(refusal_message(REASON_FULL))
    assert "--viewers" in info.value.hint


def test_client_holding_the_wrong_host_key_is_refused():
    initiator = HandshakeInitiator(CLIENT, STRANGER.public_key)  # not the host's key
    with pytest.raises(HandshakeRefused) as info:
        HandshakeResponder(HOST, trusted(CLIENT)).receive(initiator.start())
    assert info.value.reason == REASON_UNKNOWN_HOST_KEY


def test_impostor_host_cannot_complete_the_handshake():
    initiator = HandshakeInitiator(CLIENT, HOST.public_key)
    impostor = HandshakeResponder(STRANGER, lambda key: TrustedPeer("x", key, 0.0))
    with pytest.raises(HandshakeRefused):  # it cannot even read the client's INIT
        impostor.receive(initiator.start())


def test_tampered_response_is_rejected():
    initiator = HandshakeInitiator(CLIENT, HOST.public_key)
    response = bytearray(HandshakeResponder(HOST, trusted(CLIENT)).receive(initiator.start()))
    response[-1] ^= 1
    with pytest.raises(CryptoError, match="failed authentication"):
        initiator.receive(bytes(response))


def test_forged_response_does_not_spoil_the_genuine_one():
    initiator = HandshakeInitiator(CLIENT, HOST.public_key)
    genuine = HandshakeResponder(HOST, trusted(CLIENT)).receive(initiator.start())
    forged = genuine[:2] + Identity.generate().public_key + genuine[34:]
    with pytest.raises(CryptoError, match="failed authentication"):
        initiator.receive(forged)
    initiator.receive(genuine)
    assert initiator.keys is not None


def test_replayed_init_is_dropped():
    guard = ReplayGuard()
    initiator = HandshakeInitiator(CLIENT, HOST.public_key, 100)
    HandshakeResponder(HOST, trusted(CLIENT), guard).receive(initiator.start())
    with pytest.raises(CryptoError, match="replay"):
        HandshakeResponder(HOST, trusted(CLIENT), guard).receive(initiator.start())
    handshake(guard=guard, now_ns=101)  # a newer INIT is fine


def test_refusal_never_amplifies_and_is_sent_at_most_once():
    refuser = Refuser(cooldown=10.0)
    addr = ("192.0.2.1", 5000)
    first = refuser.refuse(addr, INIT_SIZE, REASON_NOT_PAIRED, now=0.0)
    assert first == refusal_message(REASON_NOT_PAIRED) and len(first) == 3 <= INIT_SIZE
    assert refuser.refuse(addr, INIT_SIZE, REASON_NOT_PAIRED, now=5.0) is None
    assert refuser.refuse(addr, INIT_SIZE, REASON_NOT_PAIRED, now=10.0) == first
    assert refuser.refuse(("192.0.2.2", 1), 2, REASON_NOT_PAIRED, now=0.0) is None


def test_refuser_memory_is_bounded_under_a_flood():
    refuser = Refuser(cooldown=10.0, max_addresses=4)
    answers = [refuser.refuse(i, INIT_SIZE, REASON_NOT_PAIRED, now=0.0) for i in range(10)]
    assert sum(a is not None for a in answers) == 4
    assert refuser.refuse(99, INIT_SIZE, REASON_NOT_PAIRED, now=20.0) is not None


def test_messages_out_of_turn():
    initiator, responder = handshake()
    with pytest.raises(CryptoError, match="already finished"):
        initiator.receive(bytes.fromhex(RESPONSE))
    with pytest.raises(CryptoError, match="already finished"):
        responder.receive(bytes.fromhex(INIT))


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=120),
                 st.binary(min_size=104, max_size=104).map(lambda b: b"\x28\x01" + b),
                 st.binary(min_size=48, max_size=48).map(lambda b: b"\x29\x01" + b),
                 st.binary(min_size=1, max_size=1).map(lambda b: b"\x2a\x01" + b)))
def test_fuzz_handshake_parsers_only_raise_crypto_error(data):
    responder = HandshakeResponder(HOST, trusted(CLIENT))
    initiator = HandshakeInitiator(CLIENT, HOST.public_key)
    for receive in (responder.receive, initiator.receive):
        try:
            receive(data)
        except CryptoError:
            pass


def test_every_handshake_message_is_a_control_payload_as_it_stands():
    for data in (bytes.fromhex(INIT), bytes.fromhex(RESPONSE), refusal_message(REASON_NOT_PAIRED)):
        decoded = decode_control(data)
        assert isinstance(decoded, CryptoMessage) and bytes(decoded) == data


def test_a_retry_is_a_new_initiator_and_late_responses_are_dropped():
    guard = ReplayGuard()
    first = HandshakeInitiator(CLIENT, HOST.public_key, 10)
    late_response = HandshakeResponder(HOST, trusted(CLIENT), guard).receive(first.start())
    # RESPONSE is slow; the client retries with a fresh initiator.
    retry = HandshakeInitiator(CLIENT, HOST.public_key, 20)
    responder = HandshakeResponder(HOST, trusted(CLIENT), guard)
    response = responder.receive(retry.start())
    with pytest.raises(CryptoError, match="failed authentication"):
        retry.receive(late_response)
    retry.receive(response)
    assert retry.keys.tx_key == responder.keys.rx_key
    # Resending the old INIT bytes is a replay by then.
    with pytest.raises(CryptoError, match="replay"):
        HandshakeResponder(HOST, trusted(CLIENT), guard).receive(first.start())
