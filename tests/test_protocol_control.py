from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rootstream.protocol import (
    Bitrate,
    Bye,
    ByeReason,
    Capability,
    Codec,
    Config,
    CryptoMessage,
    Hello,
    IdrReason,
    IdrRequest,
    Keepalive,
    Ping,
    Pong,
    ProtocolError,
    StatsReport,
    decode_control,
    encode_control,
)

MESSAGES = [
    Hello(1, Capability.H264 | Capability.FEC, 1920, 1080, "living-room"),
    Hello(),
    Config(1, Codec.H264, 1280, 720, 60, 10_000, Capability.H264, 0xDEADBEEF, "rig"),
    Keepalive(123),
    IdrRequest(IdrReason.FRAME_LOST, 41),
    StatsReport(1000, 60, 59, 1, 0, 1000, 2, 20_000, 2500, 4100, 12_000, -3_000),
    Bye(ByeReason.TIMEOUT),
    Ping(7, 123456789),
    Pong(7, 1, 2, 3),
    Bitrate(8000),
    CryptoMessage(0x21, b"opaque"),
]

# Fields appended within v1 and their defaults: with all defaults a message
# leaves them out, which is the form an older peer sends.
DEFAULTS = {
    Hello: {"want_fps": 0, "want_bitrate_kbps": 0},
    Config: {"encoder": "", "capture": "", "host_system": "", "host_cpu": "", "host_cpus": 0,
             "host_software": ""},
    Pong: {"cpu_ns": 0},
}
# The same fields as a newer peer sends them when they hold their defaults.
DEFAULT_TAILS = {Hello: b"\0" * 6, Config: b"\0" * 7, Pong: b"\0" * 8}
APPENDED = [
    Hello(1, Capability.H264, 1920, 1080, "bench", want_fps=60, want_bitrate_kbps=20_000),
    Config(1, Codec.H264, 1280, 720, 60, 10_000, Capability.H264, 7, "rig", encoder="x264",
           capture="test", host_system="Linux 6.1.0 x86_64", host_cpu="AMD EPYC", host_cpus=2,
           host_software="rootstream 0.1.0, Python 3.11.2"),
    Pong(7, 1, 2, 3, cpu_ns=1_500_000_000),
]


@pytest.mark.parametrize("message", MESSAGES + APPENDED,
                         ids=lambda m: type(m).__name__)
def test_round_trip(message):
    data = encode_control(message)
    assert bytes(message) == data
    assert decode_control(data) == message


@pytest.mark.parametrize("message", [m for m in MESSAGES if not isinstance(m, CryptoMessage)],
                         ids=lambda m: type(m).__name__)
def test_every_truncation_is_rejected(message):
    data = encode_control(message)
    shortest = len(data)
    if isinstance(message, StatsReport):
        # A report from a peer that predates the appended fields still parses.
        shortest = 1 + StatsReport.FIRST.size
    for cut in range(shortest):
        with pytest.raises(ProtocolError):
            decode_control(data[:cut])
    for cut in range(shortest, len(data)):
        parsed = decode_control(data[:cut])
        assert encode_control(parsed)[:shortest] == data[:shortest]


def test_a_stats_report_without_the_appended_fields_reads_them_as_zero():
    full = StatsReport(1000, 60, 59, 1, 0, 1000, 2, 20_000, 2500, 4100, 12_000, -3_000)
    first_cut = encode_control(full)[:1 + StatsReport.FIRST.size]
    parsed = decode_control(first_cut)
    assert parsed == StatsReport(1000, 60, 59, 1, 0, 1000, 2, 20_000, 2500, 4100, 0, 0)
    assert decode_control(encode_control(full)) == full


@pytest.mark.parametrize("message", APPENDED, ids=lambda m: type(m).__name__)
def test_a_cut_where_appended_fields_begin_reads_as_an_older_peer(message):
    older = replace(message, **DEFAULTS[type(message)])
    data, old_data = encode_control(message), encode_control(older)
    assert data.startswith(old_data) and len(data) > len(old_data)
    assert decode_control(old_data) == older
    for cut in range(len(data)):
        if cut == len(old_data):
            continue
        with pytest.raises(ProtocolError):
            decode_control(data[:cut])


@pytest.mark.parametrize("message", [m for m in MESSAGES if not isinstance(m, CryptoMessage)]
                         + APPENDED, ids=lambda m: type(m).__name__)
def test_fields_appended_by_a_newer_peer_are_ignored(message):
    # A newer peer sends every field we know (ours with their defaults) before its own.
    data = encode_control(message)
    if type(message) in DEFAULTS and message == replace(message, **DEFAULTS[type(message)]):
        data += DEFAULT_TAILS[type(message)]
    assert decode_control(data + b"\x01\x02future") == message


def test_unknown_kind_and_empty_payload():
    with pytest.raises(ProtocolError, match="control message has an unknown kind"):
        decode_control(b"\x7f")
    with pytest.raises(ProtocolError, match="control message is empty"):
        decode_control(b"")


def test_string_rules():
    long_name = Hello(client_name="é" * 40)  # 80 bytes of UTF-8, cut to 64 on a char boundary
    parsed = decode_control(encode_control(long_name))
    assert parsed.client_name == "é" * 32
    bad_utf8 = bytes([0x01, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0xC3, 0x28])
    with pytest.raises(ProtocolError, match="not UTF-8"):
        decode_control(bad_utf8)
    too_long = bytes([0x01, 1, 0, 0, 0, 0, 0, 0, 0, 0, 65]) + b"a" * 65
    with pytest.raises(ProtocolError, match="over-long string"):
        decode_control(too_long)


def test_crypto_kind_range_is_enforced_when_sending():
    with pytest.raises(ValueError):
        CryptoMessage(0x30, b"").pack()


@given(st.binary(max_size=300))
def test_random_payloads_raise_only_protocol_error(data):
    try:
        message = decode_control(data)
    except ProtocolError:
        return
    # Whatever parsed must re-encode to a prefix of the input (trailing bytes ignored).
    encoded = encode_control(message)
    if isinstance(message, StatsReport) and len(data) < len(encoded):
        encoded = encoded[:1 + StatsReport.FIRST.size]  # a first-cut report
    assert data.startswith(encoded) or isinstance(message, (Hello, Config))
