"""CONTROL messages (docs/PROTOCOL.md §4).

A CONTROL payload is one message: a kind byte, then that kind's fields in
network byte order.  Versioning rule: within protocol version 1, a message
only ever grows by appending fields; a parser reads the fields it knows and
ignores trailing bytes, so a newer peer can add fields without breaking an
older one.  An unknown kind raises ProtocolError (the receiver counts and
drops it).  Strings are a u8 length then UTF-8, at most 64 bytes.

Kinds 0x20-0x2F are reserved for pairing and the session handshake, whose
bodies the crypto layer defines (docs/SECURITY.md); they travel here as
opaque bytes (``CryptoMessage``).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import ClassVar

from rootstream.errors import ProtocolError
from rootstream.protocol.header import VERSION

MAX_STRING = 64


class ControlKind(enum.IntEnum):
    HELLO = 0x01
    CONFIG = 0x02
    KEEPALIVE = 0x03
    IDR_REQUEST = 0x04
    STATS = 0x05
    BYE = 0x06
    PING = 0x07
    PONG = 0x08
    BITRATE = 0x09
    RUMBLE = 0x0A
    CLIPBOARD_DATA = 0x0B
    CLIPBOARD_ACK = 0x0C
    # Handing control between viewers (rootstream/protocol/handoff.py).
    CONTROL_REQUEST = 0x10
    CONTROL_ANSWER = 0x11
    CONTROL_STATE = 0x12
    REPAIR_REQUEST = 0x13  # lost fragments, asked again (rootstream/protocol/repair.py)


CRYPTO_KINDS = range(0x20, 0x30)


class Capability(enum.IntFlag):
    H264 = 0x0001
    HEVC = 0x0002
    FEC = 0x0004
    AUDIO = 0x0008
    INPUT = 0x0010
    ENCRYPTION = 0x0020
    # Optional features (docs/PROTOCOL.md §4): a peer sends a feature's messages
    # only when the other announced its bit, so an older peer never sees them.
    RUMBLE = 0x0040  # hello: plays rumble messages; config: sends them
    MICROPHONE = 0x0080  # hello: wants to send its microphone; config: takes it
    CLIPBOARD = 0x0100  # both: shares the clipboard
    # config: recovers viewers by intra refresh, not keyframes (host --refresh-ms);
    # the client waits for a refresh cycle rather than ask for a keyframe.
    REFRESH = 0x0200
    HANDOFF = 0x0400  # both: control moves between viewers (protocol/handoff.py)
    REPAIR = 0x0800  # both: lost fragments are asked for again (protocol/repair.py)


class Codec(enum.IntEnum):
    H264 = 1
    HEVC = 2


class ByeReason(enum.IntEnum):
    NORMAL = 0
    TIMEOUT = 1
    REPLACED = 2
    ERROR = 3
    REFUSED = 4
    BUSY = 5
    FULL = 6  # host --viewers N: N already watch
    SETTINGS = 7  # others watch other settings than this client asked for (a bench phase)


class IdrReason(enum.IntEnum):
    STARTUP = 0
    FRAME_LOST = 1
    DECODE_ERROR = 2


def _pack_string(text: str) -> bytes:
    raw = text.encode("utf-8")[:MAX_STRING]
    # Never cut a multi-byte character in half.
    raw = raw.decode("utf-8", "ignore").encode("utf-8")
    return bytes([len(raw)]) + raw


def _unpack_string(body: memoryview, offset: int, kind: str) -> tuple[str, int]:
    if offset >= len(body):
        raise ProtocolError(f"{kind} message is truncated")
    length = body[offset]
    end = offset + 1 + length
    if length > MAX_STRING:
        raise ProtocolError(f"{kind} message has an over-long string")
    if end > len(body):
        raise ProtocolError(f"{kind} message is truncated")
    try:
        return bytes(body[offset + 1:end]).decode("utf-8"), end
    except UnicodeDecodeError:
        raise ProtocolError(f"{kind} message has a string that is not UTF-8") from None


def _appended(body: memoryview, offset: int, fields: struct.Struct, kind: str) -> tuple | None:
    """Fields appended within v1 at ``offset``: None when the sender stopped
    before them (an older peer), truncated when it stopped inside them."""
    if offset == len(body):
        return None
    if len(body) < offset + fields.size:
        raise ProtocolError(f"{kind} message is truncated")
    return fields.unpack_from(body, offset)


class _Fixed:
    """A message whose fields are one fixed struct (plus ignored trailing bytes)."""

    KIND: ClassVar[ControlKind]
    STRUCT: ClassVar[struct.Struct]
    NAME: ClassVar[str]

    def pack(self) -> bytes:
        return bytes([self.KIND]) + self.STRUCT.pack(*self._values())

    def __bytes__(self) -> bytes:
        return self.pack()

    def _values(self) -> tuple:
        return tuple(getattr(self, f) for f in self.__slots__)  # type: ignore[attr-defined]

    @classmethod
    def parse_body(cls, body: memoryview):
        if len(body) < cls.STRUCT.size:
            raise ProtocolError(f"{cls.NAME} message is truncated")
        return cls(*cls.STRUCT.unpack_from(body))


@dataclass(frozen=True, slots=True)
class Hello:
    """Client -> host: the first message of a session."""

    protocol_version: int = VERSION
    capabilities: int = 0
    max_width: int = 0  # 0: no preference
    max_height: int = 0
    client_name: str = ""
    # Appended within v1 (``rootstream bench`` asks for each phase's stream);
    # 0: the host's choice.  Sent only when one is set, so a hello without
    # wishes is byte for byte what older clients send.
    want_fps: int = 0
    want_bitrate_kbps: int = 0

    KIND: ClassVar[ControlKind] = ControlKind.HELLO
    _HEAD: ClassVar[struct.Struct] = struct.Struct("!BIHH")
    _WANTS: ClassVar[struct.Struct] = struct.Struct("!HI")

    def pack(self) -> bytes:
        data = (bytes([self.KIND])
                + self._HEAD.pack(self.protocol_version, self.capabilities,
                                  self.max_width, self.max_height)
                + _pack_string(self.client_name))
        if self.want_fps or self.want_bitrate_kbps:
            data += self._WANTS.pack(self.want_fps, self.want_bitrate_kbps)
        return data

    __bytes__ = pack

    @classmethod
    def parse_body(cls, body: memoryview) -> Hello:
        if len(body) < cls._HEAD.size:
            raise ProtocolError("hello message is truncated")
        version, caps, width, height = cls._HEAD.unpack_from(body)
        name, end = _unpack_string(body, cls._HEAD.size, "hello")
        wants = _appended(body, end, cls._WANTS, "hello") or (0, 0)
        return cls(version, caps, width, height, name, *wants)


@dataclass(frozen=True, slots=True)
class Config:
    """Host -> client: the answer to a hello, describing the stream."""

    protocol_version: int = VERSION
    codec: int = Codec.H264
    width: int = 0
    height: int = 0
    fps: int = 60
    bitrate_kbps: int = 0
    capabilities: int = 0
    session_id: int = 0
    host_name: str = ""
    # Appended within v1: what produces the stream and on what machine, so a
    # benchmark can say what it measured.  All or none are sent: none when all
    # are empty, which is byte for byte what older hosts send.
    encoder: str = ""  # backend name, e.g. "x264"
    capture: str = ""  # backend name, e.g. "test"
    host_system: str = ""  # "Linux 6.1.0-18-amd64 x86_64"
    host_cpu: str = ""  # CPU model
    host_cpus: int = 0  # logical CPUs
    host_software: str = ""  # rootstream, Python, PyAV and FFmpeg versions

    KIND: ClassVar[ControlKind] = ControlKind.CONFIG
    _HEAD: ClassVar[struct.Struct] = struct.Struct("!BBHHHIII")
    _CPUS: ClassVar[struct.Struct] = struct.Struct("!H")

    def pack(self) -> bytes:
        data = (bytes([self.KIND])
                + self._HEAD.pack(self.protocol_version, self.codec, self.width, self.height,
                                  self.fps, self.bitrate_kbps, self.capabilities, self.session_id)
                + _pack_string(self.host_name))
        if any((self.encoder, self.capture, self.host_system, self.host_cpu, self.host_cpus,
                self.host_software)):
            data += (_pack_string(self.encoder) + _pack_string(self.capture)
                     + _pack_string(self.host_system) + _pack_string(self.host_cpu)
                     + self._CPUS.pack(self.host_cpus) + _pack_string(self.host_software))
        return data

    __bytes__ = pack

    @classmethod
    def parse_body(cls, body: memoryview) -> Config:
        if len(body) < cls._HEAD.size:
            raise ProtocolError("config message is truncated")
        fields = cls._HEAD.unpack_from(body)
        name, end = _unpack_string(body, cls._HEAD.size, "config")
        if end == len(body):
            return cls(*fields, host_name=name)
        described = []
        for _ in range(4):
            text, end = _unpack_string(body, end, "config")
            described.append(text)
        if len(body) < end + cls._CPUS.size:
            raise ProtocolError("config message is truncated")
        (cpus,) = cls._CPUS.unpack_from(body, end)
        software, _ = _unpack_string(body, end + cls._CPUS.size, "config")
        return cls(*fields, name, *described, cpus, software)


@dataclass(frozen=True, slots=True)
class Keepalive(_Fixed):
    """Either way, when nothing else was sent for a while."""

    sent_ms: int = 0
    KIND: ClassVar[ControlKind] = ControlKind.KEEPALIVE
    STRUCT: ClassVar[struct.Struct] = struct.Struct("!I")
    NAME: ClassVar[str] = "keepalive"


@dataclass(frozen=True, slots=True)
class IdrRequest(_Fixed):
    """Client -> host: send a keyframe now."""

    reason: int = IdrReason.FRAME_LOST
    last_frame_id: int = 0  # the newest frame the client decoded
    KIND: ClassVar[ControlKind] = ControlKind.IDR_REQUEST
    STRUCT: ClassVar[struct.Struct] = struct.Struct("!BI")
    NAME: ClassVar[str] = "idr request"


@dataclass(frozen=True, slots=True)
class StatsReport(_Fixed):
    """Client -> host, every second or so: what arrived and how fast."""

    interval_ms: int = 0
    frames_received: int = 0
    frames_presented: int = 0
    frames_lost: int = 0
    frames_recovered: int = 0
    datagrams_received: int = 0
    datagrams_lost: int = 0  # estimated from sequence gaps
    receive_kbps: int = 0
    client_p50_us: int = 0  # first datagram -> presented
    client_p99_us: int = 0
    # Appended for adaptive bitrate (a report without them parses with zeros):
    queue_delay_us: int = 0  # one-way delay above its recent floor
    delay_trend_us: int = 0  # signed: its change since the previous report
    KIND: ClassVar[ControlKind] = ControlKind.STATS
    STRUCT: ClassVar[struct.Struct] = struct.Struct("!HIIIIIIIIIIi")
    FIRST: ClassVar[struct.Struct] = struct.Struct("!HIIIIIIIII")  # the fields of the first cut
    NAME: ClassVar[str] = "stats"

    @classmethod
    def parse_body(cls, body: memoryview) -> StatsReport:
        if len(body) >= cls.STRUCT.size:
            return cls(*cls.STRUCT.unpack_from(body))
        if len(body) >= cls.FIRST.size:
            return cls(*cls.FIRST.unpack_from(body))
        raise ProtocolError("stats message is truncated")


@dataclass(frozen=True, slots=True)
class Bye(_Fixed):
    """Either way: the session ends now."""

    reason: int = ByeReason.NORMAL
    KIND: ClassVar[ControlKind] = ControlKind.BYE
    STRUCT: ClassVar[struct.Struct] = struct.Struct("!B")
    NAME: ClassVar[str] = "bye"


@dataclass(frozen=True, slots=True)
class Ping(_Fixed):
    """Clock probe: t0 is the sender's monotonic clock in ns."""

    probe_id: int = 0
    t0_ns: int = 0
    KIND: ClassVar[ControlKind] = ControlKind.PING
    STRUCT: ClassVar[struct.Struct] = struct.Struct("!IQ")
    NAME: ClassVar[str] = "ping"


@dataclass(frozen=True, slots=True)
class Pong(_Fixed):
    """Answer to a ping: t1 when it arrived, t2 when this left (answerer's clock).

    ``cpu_ns`` (appended within v1) is the answerer's process CPU time (user +
    system) at t1, so a benchmark learns the host's CPU load from two pongs.
    0 means not reported, and is not sent: older peers' pongs look the same.
    """

    probe_id: int = 0
    t0_ns: int = 0
    t1_ns: int = 0
    t2_ns: int = 0
    cpu_ns: int = 0
    KIND: ClassVar[ControlKind] = ControlKind.PONG
    STRUCT: ClassVar[struct.Struct] = struct.Struct("!IQQQ")
    _CPU: ClassVar[struct.Struct] = struct.Struct("!Q")
    NAME: ClassVar[str] = "pong"

    def pack(self) -> bytes:
        data = bytes([self.KIND]) + self.STRUCT.pack(self.probe_id, self.t0_ns, self.t1_ns,
                                                     self.t2_ns)
        return data + self._CPU.pack(self.cpu_ns) if self.cpu_ns else data

    __bytes__ = pack

    @classmethod
    def parse_body(cls, body: memoryview) -> Pong:
        if len(body) < cls.STRUCT.size:
            raise ProtocolError("pong message is truncated")
        cpu = _appended(body, cls.STRUCT.size, cls._CPU, "pong") or (0,)
        return cls(*cls.STRUCT.unpack_from(body), *cpu)


@dataclass(frozen=True, slots=True)
class Bitrate(_Fixed):
    """Host -> client: the encoder now runs at this bitrate."""

    bitrate_kbps: int = 0
    KIND: ClassVar[ControlKind] = ControlKind.BITRATE
    STRUCT: ClassVar[struct.Struct] = struct.Struct("!I")
    NAME: ClassVar[str] = "bitrate"


@dataclass(frozen=True, slots=True)
class CryptoMessage:
    """Pairing/handshake message: kind 0x20-0x2F with a body the crypto layer parses."""

    kind: int
    body: bytes

    def pack(self) -> bytes:
        if self.kind not in CRYPTO_KINDS:
            raise ValueError(f"crypto message kind {self.kind:#x} is outside 0x20-0x2f")
        return bytes([self.kind]) + self.body

    __bytes__ = pack


_BY_KIND = {cls.KIND: cls for cls in (Hello, Config, Keepalive, IdrRequest, StatsReport, Bye,
                                       Ping, Pong, Bitrate)}


def encode_control(message: ControlMessage) -> bytes:
    return message.pack()


def decode_control(payload: bytes | memoryview) -> ControlMessage:
    """Parse one CONTROL payload; raises ProtocolError only."""
    body = memoryview(payload)
    if len(body) == 0:
        raise ProtocolError("control message is empty")
    kind = body[0]
    if kind in CRYPTO_KINDS:
        return CryptoMessage(kind, bytes(body[1:]))
    cls = _BY_KIND.get(kind)
    if cls is None:
        raise ProtocolError("control message has an unknown kind")
    return cls.parse_body(body[1:])


# The optional features' messages (rumble, clipboard), the hand-off's and the
# repair request live in modules of their own, which build on this one's
# pieces; importing them here, after those, puts their kinds in the one parser
# (and keeps ``from rootstream.protocol.control import Rumble`` working).
from rootstream.protocol.features import ClipboardAck, ClipboardData, Rumble  # noqa: E402
from rootstream.protocol.handoff import HANDOFF_MESSAGES  # noqa: E402
from rootstream.protocol.repair import RepairRequest  # noqa: E402

_BY_KIND.update({cls.KIND: cls for cls in (Rumble, ClipboardData, ClipboardAck,
                                           *HANDOFF_MESSAGES, RepairRequest)})

ControlMessage = (Hello | Config | Keepalive | IdrRequest | StatsReport | Bye | Ping | Pong
                  | Bitrate | Rumble | ClipboardData | ClipboardAck | CryptoMessage)
