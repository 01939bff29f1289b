"""The vectors of docs/PROTOCOL.md, checked byte for byte both ways."""

import itertools

import pytest
from protocol_vectors import load_vectors

from rootstream.protocol import (
    Bitrate,
    Bye,
    ByeReason,
    Capability,
    Codec,
    Config,
    CryptoMessage,
    FragmentHeader,
    Hello,
    IdrReason,
    IdrRequest,
    Keepalive,
    PacketType,
    Ping,
    Pong,
    ProtocolError,
    Reassembler,
    StatsReport,
    VideoFragmenter,
    decode_control,
    decode_datagram,
    encode_control,
    encode_datagram,
)
from rootstream.protocol.control import ClipboardAck, ClipboardData, Rumble
from rootstream.protocol.handoff import ControlAnswer, ControlRequest, ControlState
from rootstream.protocol.repair import RepairRequest

VECTORS = load_vectors()

CONTROL = {
    "control.hello": Hello(1, Capability.H264 | Capability.FEC, 1920, 1080, "tv"),
    "control.hello-wants": Hello(1, Capability.H264 | Capability.FEC, 1920, 1080, "tv",
                                 want_fps=60, want_bitrate_kbps=20_000),
    "control.config": Config(1, Codec.H264, 1280, 720, 60, 10_000, Capability.H264,
                             0xDEADBEEF, "rig"),
    "control.config-described": Config(1, Codec.H264, 1280, 720, 60, 10_000, Capability.H264,
                                       0xDEADBEEF, "rig", encoder="x264", capture="test",
                                       host_system="Linux", host_cpu="EPYC", host_cpus=2,
                                       host_software="py"),
    "control.keepalive": Keepalive(1000),
    "control.idr-request": IdrRequest(IdrReason.FRAME_LOST, 41),
    "control.stats": StatsReport(1000, 60, 59, 1, 0, 1000, 2, 20_000, 2500, 4100,
                                 12_000, -3_000),
    "control.bye": Bye(ByeReason.NORMAL),
    "control.bye-full": Bye(ByeReason.FULL),
    "control.bye-settings": Bye(ByeReason.SETTINGS),
    "control.config-refresh": Config(1, Codec.H264, 1280, 720, 60, 10_000,
                                     Capability.H264 | Capability.REFRESH, 0xDEADBEEF, "rig"),
    "control.ping": Ping(7, 123456789),
    "control.pong": Pong(7, 123456789, 5_000_000_000, 5_000_001_000),
    "control.pong-cpu": Pong(7, 123456789, 5_000_000_000, 5_000_001_000, cpu_ns=1_500_000_000),
    "control.bitrate": Bitrate(8000),
    "control.rumble": Rumble(0, 0xC000, 0x4000, 500),
    "control.clipboard-data": ClipboardData(7, 5, 0, "héll".encode()),
    "control.clipboard-ack": ClipboardAck(7, 5),
    "control.crypto-opaque": CryptoMessage(0x20, b"\x01\x02"),
    "control.control-request": ControlRequest(1),
    "control.control-answer": ControlAnswer(2, 1),
    "control.control-state": ControlState(7, 2, 1, 3, 0, 1, 2, 2, "den", "tv"),
    "control.repair-request": RepairRequest(42, ((3, 5), (12, 1)), attempt=2),
    "control.repair-request-whole": RepairRequest(5),
}

FRAME = b"ABCDEFGHIJKLMNOPQRST"


def test_the_document_has_every_vector_and_no_unknown_one():
    expected = set(CONTROL) | {"datagram.control-keepalive", "datagram.input-empty",
                               "video.keyframe-3-fragments", "video.fec-3-plus-2",
                               "video.refresh-start-3-fragments"}
    assert set(VECTORS) == expected


@pytest.mark.parametrize("name", sorted(CONTROL))
def test_control_vectors(name):
    (raw,) = VECTORS[name]
    assert encode_control(CONTROL[name]) == raw
    assert decode_control(raw) == CONTROL[name]


def test_datagram_vectors():
    (keepalive,) = VECTORS["datagram.control-keepalive"]
    assert encode_datagram(PacketType.CONTROL, 0x0102, 0x0A0B0C0D,
                           encode_control(Keepalive(0x11223344))) == keepalive
    header, payload = decode_datagram(keepalive)
    assert (header.ptype, header.sequence, header.timestamp_ms) == (
        PacketType.CONTROL, 0x0102, 0x0A0B0C0D)
    assert decode_control(payload) == Keepalive(0x11223344)
    (empty,) = VECTORS["datagram.input-empty"]
    assert encode_datagram(PacketType.INPUT, 0xFFFF, 0xFFFFFFFF, b"") == empty


@pytest.mark.parametrize("name, fragmenter, keyframe, host_us", [
    ("video.keyframe-3-fragments", VideoFragmenter(max_payload=28), True, 1500),
    ("video.fec-3-plus-2", VideoFragmenter(max_payload=28, fec_share=0.5, first_frame_id=9),
     False, 800),
])
def test_video_vectors(name, fragmenter, keyframe, host_us):
    payloads = VECTORS[name]
    assert fragmenter.fragment(FRAME, keyframe=keyframe, host_us=host_us) == payloads
    for payload in payloads:
        assert FragmentHeader.parse(payload).pack() == payload[:20]
    reassembler = Reassembler()
    frames = [f for p in payloads if (f := reassembler.push(p, 0, 0)) is not None]
    assert len(frames) == 1 and bytes(frames[0].data) == FRAME
    assert frames[0].keyframe == keyframe and frames[0].host_us == host_us


def test_refresh_start_vector():
    payloads = VECTORS["video.refresh-start-3-fragments"]
    frame = VideoFragmenter(max_payload=28).cut(FRAME, keyframe=False, host_us=1500,
                                               refresh_start=True)
    assert frame.data == payloads
    reassembler = Reassembler()
    (done,) = [f for p in payloads if (f := reassembler.push(p, 0, 0)) is not None]
    assert done.refresh_start and not done.keyframe and bytes(done.data) == FRAME


def test_fec_vector_rebuilds_from_any_three_of_five():
    payloads = VECTORS["video.fec-3-plus-2"]
    for kept in itertools.combinations(range(5), 3):
        reassembler = Reassembler()
        frames = [f for i in kept if (f := reassembler.push(payloads[i], 0, 0)) is not None]
        assert len(frames) == 1 and bytes(frames[0].data) == FRAME


PARSERS = {"datagram": decode_datagram, "video": FragmentHeader.parse,
           "control": decode_control}


# Vectors with a group of fields appended within v1, and the vector of the same
# message as an older peer sends it: cut exactly there, the message still parses.
OLDER_FORM = {"control.hello-wants": "control.hello",
              "control.config-described": "control.config",
              "control.pong-cpu": "control.pong"}


@pytest.mark.parametrize("name", sorted(set(VECTORS) - {"control.crypto-opaque"}))
def test_every_prefix_of_every_vector_is_rejected(name):
    # (An opaque crypto body has no length of its own: the crypto layer checks it.)
    parse = PARSERS[name.split(".")[0]]
    for raw in VECTORS[name]:
        # A stats report as long as its first cut (before fields were appended) parses.
        shortest = 1 + StatsReport.FIRST.size if name == "control.stats" else len(raw)
        older = OLDER_FORM.get(name)
        for cut in range(shortest):
            if older and raw[:cut] == VECTORS[older][0]:
                assert parse(raw[:cut]) == CONTROL[older]
                continue
            with pytest.raises(ProtocolError):
                parse(raw[:cut])


def test_a_sender_gets_the_data_fragments_before_the_parity_is_computed():
    fragmenter = VideoFragmenter(max_payload=28, fec_share=0.5, first_frame_id=9)
    data, parity = fragmenter.fragment_split(FRAME, keyframe=False, host_us=800)
    assert data == VECTORS["video.fec-3-plus-2"][:3]
    assert parity() == VECTORS["video.fec-3-plus-2"][3:]
    # The data fragments alone complete the frame: nobody waits for parity.
    reassembler = Reassembler()
    frames = [f for p in data if (f := reassembler.push(p, 0, 0)) is not None]
    assert len(frames) == 1 and bytes(frames[0].data) == FRAME
