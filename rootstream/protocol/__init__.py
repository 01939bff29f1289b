"""The ROOT wire protocol v1: header, payloads, fragmentation, reassembly.

docs/PROTOCOL.md is the byte-level spec; tests/test_protocol_vectors.py pins
the same vectors.
"""

from rootstream.errors import ProtocolError
from rootstream.protocol.control import (
    Bitrate,
    Bye,
    ByeReason,
    Capability,
    Codec,
    Config,
    ControlKind,
    CryptoMessage,
    Hello,
    IdrReason,
    IdrRequest,
    Keepalive,
    Ping,
    Pong,
    StatsReport,
    decode_control,
    encode_control,
)
from rootstream.protocol.header import (
    HEADER_SIZE,
    MAX_DATAGRAM,
    MAX_PAYLOAD,
    Header,
    PacketType,
    associated_data,
    decode_datagram,
    encode_datagram,
)
from rootstream.protocol.reassembly import AssembledFrame, Reassembler, ReassemblyStats
from rootstream.protocol.seqnum import (
    seq16_diff,
    seq16_newer,
    seq32_diff,
    seq32_newer,
    ts32_elapsed_ms,
)
from rootstream.protocol.video import FragmentedFrame, FragmentHeader, VideoFragmenter

__all__ = [
    "AssembledFrame", "Bitrate", "Bye", "ByeReason", "Capability", "Codec", "Config",
    "ControlKind", "CryptoMessage", "FragmentedFrame", "FragmentHeader", "HEADER_SIZE", "Header",
    "Hello",
    "IdrReason", "IdrRequest", "Keepalive", "MAX_DATAGRAM", "MAX_PAYLOAD", "PacketType", "Ping",
    "Pong", "ProtocolError", "Reassembler", "ReassemblyStats", "StatsReport", "VideoFragmenter",
    "associated_data", "decode_control", "decode_datagram", "encode_control", "encode_datagram",
    "seq16_diff", "seq16_newer", "seq32_diff", "seq32_newer", "ts32_elapsed_ms",
]
