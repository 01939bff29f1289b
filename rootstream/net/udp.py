"""The UDP transport both sides use: one socket, ROOT framing, counters.

Networking is plain blocking sockets driven by threads (the host's sender
and its control loop, the client's receiver); nothing here is asyncio.  The
socket is tuned once: large buffers so a whole IDR (hundreds of datagrams)
fits in the receive queue while the application is busy, and DSCP marks so a
Wi-Fi access point can put video and input in its low-latency queue.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import NamedTuple

from rootstream.crypto.seal import SEAL_OVERHEAD
from rootstream.errors import CryptoError, NetworkError, ProtocolError
from rootstream.protocol import (
    HEADER_SIZE,
    MAX_PAYLOAD,
    Header,
    PacketType,
    decode_datagram,
    encode_datagram,
)
from rootstream.protocol.control import CRYPTO_KINDS
from rootstream.protocol.header import header_pre_image, join_datagram
from rootstream.protocol.seqnum import seq16_diff

try:  # a frame's datagrams in one sendmmsg(2), GIL released; else one sendto each
    from rootstream._native._sendmany import sendmany as _sendmany
except ImportError:  # pragma: no cover - a build without the C extension
    _sendmany = None
# False sends each datagram with its own sendto (bench_glass's rootstream-send-each).
SEND_BATCHED = True

DEFAULT_PORT = 47100
SOCKET_BUFFER = 8 * 1024 * 1024
# DSCP EF (46) for interactive traffic, as WMM maps it to the voice queue.
DSCP_EF = 46 << 2


@dataclass
class TransportCounters:
    sent: int = 0
    sent_bytes: int = 0
    received: int = 0
    received_bytes: int = 0
    malformed: int = 0
    foreign: int = 0  # from an address other than the session's peer
    rejected: dict[str, int] = field(default_factory=dict)  # sealed boxes that failed, by cause
    lost: dict[int, int] = field(default_factory=dict)  # per type, from sequence gaps


class _SequenceTracker:
    """Estimates datagrams lost per type from gaps in the 16-bit sequence."""

    def __init__(self) -> None:
        self._highest: dict[int, int] = {}

    def seen(self, ptype: int, seq: int) -> int:
        """Record a sequence number; returns how many it shows as missing."""
        last = self._highest.get(ptype)
        if last is None:
            self._highest[ptype] = seq
            return 0
        gap = seq16_diff(seq, last)
        if gap <= 0:
            return 0  # a reordered or duplicate datagram
        self._highest[ptype] = seq
        return gap - 1 if gap < 1024 else 0  # a huge jump is a restart, not a loss


class _Peer(NamedTuple):
    sealer: object  # rootstream.crypto.seal.Sealer
    opener: object  # rootstream.crypto.seal.Opener
    seq: list  # the next sequence number per type, to this peer
    sent_bytes: list  # [bytes sent to this peer], a cell its senders add to


class Received(NamedTuple):
    header: Header
    payload: memoryview  # opened (plaintext) when sealed is True
    address: tuple
    received_ns: int
    sealed: bool  # it came sealed from the secured peer and opened


def is_unsealed_crypto(header: Header, payload) -> bool:
    """Pairing and handshake messages travel unsealed: CONTROL kinds 0x20-0x2F.

    A sealed payload starts with its 8-byte counter, whose first byte stays
    0x00 for the first 2^56 datagrams of a session, so the two never collide.
    """
    return header.ptype == PacketType.CONTROL and len(payload) > 0 and payload[0] in CRYPTO_KINDS


class UdpTransport:
    """A bound UDP socket that sends and receives ROOT datagrams.

    ``send`` numbers datagrams per type; ``receive`` verifies them and
    returns a ``Received``, counting and dropping anything malformed.  Once
    ``secure(peer, keys)`` is called, everything to and from that peer is
    sealed (except pairing and handshake messages); a box that does not open
    is counted by cause and dropped.  A host with several viewers secures
    several peers, each with its own keys, counters, replay window and
    sequence numbers (a viewer sees no gaps made by datagrams to the others);
    ``forget(peer)`` ends one.  An unencrypted host numbers its viewers apart
    the same way with ``add_peer(peer)`` (no keys).  Thread-safe for one receiver and any number
    of senders of different types.
    """

    def __init__(self, bind: tuple[str, int] = ("0.0.0.0", 0), *, buffer: int = SOCKET_BUFFER,
                 require_sealing: bool = False):
        family = socket.AF_INET6 if ":" in bind[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._tune(buffer)
            self.sock.bind(bind)
        except OSError as exc:
            self.sock.close()
            raise NetworkError(
                f"cannot bind UDP {bind[0]}:{bind[1]}: {exc.strerror or exc}",
                hint="another rootstream may be running; choose another --port",
            ) from exc
        self.counters = TransportCounters()
        self._seq = [0] * 256
        self._seq_lock = threading.Lock()
        self._tracker = _SequenceTracker()
        self._closed = False
        # peer -> _Peer(sealer, opener, sequence numbers), replaced as a whole
        # (copy on write) so a sender on another thread never pairs one
        # session's peer with another's keys, and reads it without a lock.
        self._secured: dict[tuple, _Peer] = {}
        self._last_secured: tuple | None = None
        # An encrypted side never sends in clear: a datagram to an address
        # with no keys (a session that just ended) is dropped, not sent open.
        self.require_sealing = require_sealing
        self.dropped_unsealed = 0
        self.receive_buffer = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)

    def _tune(self, buffer: int) -> None:
        # A whole IDR (hundreds of datagrams) must fit while the receiver is
        # busy.  As root, the FORCE options pass net.core.[rw]mem_max; otherwise
        # the kernel grants what the limit allows (see receive_buffer).
        for force, option in ((getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF),
                              (getattr(socket, "SO_SNDBUFFORCE", None), socket.SO_SNDBUF)):
            for name in (force, option):
                if name is None:
                    continue
                try:
                    self.sock.setsockopt(socket.SOL_SOCKET, name, buffer)
                    break
                except OSError:
                    continue
        if self.sock.family == socket.AF_INET:
            try:
                self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, DSCP_EF)
            except OSError:
                pass

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2]

    @property
    def max_payload(self) -> int:
        """What fits in one datagram's payload before sealing."""
        sealed = self.require_sealing or any(p.sealer for p in self._secured.values())
        return MAX_PAYLOAD - (SEAL_OVERHEAD if sealed else 0)

    def secure(self, peer: tuple | None, keys=None) -> None:
        """Seal everything to ``peer`` and open everything from it with
        ``keys`` (rootstream.crypto.SessionKeys), beside any other secured
        peer; ``secure(None)`` ends every peer's keys, ``secure(peer)`` one's."""
        with self._seq_lock:
            if peer is None:
                self._secured, self._last_secured = {}, None
                return
            secured = dict(self._secured)
            if keys is None:
                secured.pop(peer, None)
            else:
                secured[peer] = _Peer(keys.sealer(), keys.opener(), [0] * 256, [0])
                self._last_secured = peer
            if self._last_secured not in secured:
                self._last_secured = next(reversed(secured), None)
            self._secured = secured

    def forget(self, peer: tuple) -> None:
        """End one peer's keys (or numbering); the others' sessions go on."""
        self.secure(peer, None)

    def add_peer(self, peer: tuple) -> None:
        """Number datagrams to ``peer`` on their own, unsealed (an unencrypted
        host with several viewers: each sees gaps only where it lost)."""
        with self._seq_lock:
            if peer not in self._secured:
                self._secured = {**self._secured, peer: _Peer(None, None, [0] * 256, [0])}

    @property
    def secured_peer(self) -> tuple | None:
        """The peer secured last (a client has one: its host), or None."""
        return self._last_secured

    @property
    def secured_peers(self) -> tuple:
        return tuple(self._secured)

    @property
    def small_receive_buffer(self) -> bool:
        """True when the kernel granted less than a large IDR needs (1 MiB)."""
        # Linux reports twice what it granted (bookkeeping overhead included).
        return self.receive_buffer < 2 * 1024 * 1024

    def _reserve_seq(self, ptype: int, count: int = 1, address=None) -> int:
        """The first of ``count`` consecutive sequence numbers for ``ptype``
        (callers reduce them to 16 bits), taken under one lock acquisition.
        A secured peer has its own numbers: its loss count reads its gaps only."""
        peer = self._secured.get(address)
        numbers = self._seq if peer is None else peer.seq
        with self._seq_lock:
            seq = numbers[ptype]
            numbers[ptype] = (seq + count) & 0xFFFF
            return seq

    def send(self, ptype: PacketType, payload: bytes | memoryview, address,
             timestamp_ms: int | None = None, *, seal: bool = True) -> None:
        """Send one datagram; sealed when ``address`` is the secured peer,
        unless ``seal=False`` (pairing and handshake messages)."""
        if timestamp_ms is None:
            timestamp_ms = time.monotonic_ns() // 1_000_000
        self._sendto(self._frame(ptype, payload, address, timestamp_ms, seal), address)

    def send_many(self, ptype: PacketType, payloads: list[bytes], address,
                  timestamp_ms: int) -> None:
        """Send the fragments of one frame back to back, in order.

        The keys are looked up once per frame, so a frame never straddles two
        sessions' keys."""
        sealer = self._sealer_for(address, True)
        if sealer is False:
            self.dropped_unsealed += len(payloads)
            return
        seq = self._reserve_seq(ptype, len(payloads), address)
        if _sendmany is None or not SEND_BATCHED:
            for payload in payloads:
                self._sendto(self._build(ptype, seq, timestamp_ms, payload, sealer), address)
                seq += 1
            return
        # Seal them all first, then one system call: the last datagram of a
        # frame leaves right after the first instead of ~14 us apart each.
        datagrams = [self._build(ptype, seq + i, timestamp_ms, payload, sealer)
                     for i, payload in enumerate(payloads)]
        self._send_batch(datagrams, address)

    def _send_batch(self, datagrams: list[bytes], address) -> None:
        """The batched twin of ``_sendto``: same skips, counters and errors."""
        try:
            sent, sent_bytes, error = _sendmany(self.sock.fileno(), address, datagrams)
        except ValueError:  # a closed socket (fd -1) or an address that is no IP literal
            if self._closed:
                return
            for datagram in datagrams:
                self._sendto(datagram, address)
            return
        self.counters.sent += sent
        self.counters.sent_bytes += sent_bytes
        peer = self._secured.get(address)
        if peer is not None:
            peer.sent_bytes[0] += sent_bytes
        if error and not self._closed:
            exc = OSError(error, os.strerror(error))
            raise NetworkError(f"cannot send to {address[0]}:{address[1]}: {exc}") from exc

    def _sealer_for(self, address, seal: bool):
        """The Sealer for a datagram to ``address``; None to send it in clear;
        False when it must not leave (sealing required, no keys for ``address``)."""
        if not seal:
            return None
        peer = self._secured.get(address)
        if peer is not None and peer.sealer is not None:
            return peer.sealer
        return False if self.require_sealing else None

    def _frame(self, ptype, payload, address, timestamp_ms: int, seal: bool) -> bytes | None:
        sealer = self._sealer_for(address, seal)
        if sealer is False:
            self.dropped_unsealed += 1
            return None
        return self._build(ptype, self._reserve_seq(ptype, 1, address), timestamp_ms, payload,
                           sealer)

    @staticmethod
    def _build(ptype, seq: int, timestamp_ms: int, payload, sealer) -> bytes:
        if sealer is None:
            return encode_datagram(ptype, seq, timestamp_ms, payload)
        # The header, with the sealed size and a zero checksum, is the
        # associated data: the checksum covers the box, so it comes after.
        header = header_pre_image(ptype, seq, timestamp_ms, len(payload) + SEAL_OVERHEAD)
        counter, box = sealer.seal_parts(header, payload)
        return join_datagram(header, counter, box)

    def _sendto(self, datagram: bytes | None, address) -> None:
        if datagram is None:
            return  # refused by _frame: no keys for this address
        try:
            self.sock.sendto(datagram, address)
        except (BlockingIOError, ConnectionRefusedError):
            # A full send buffer or an ICMP port-unreachable from a gone peer:
            # UDP promises nothing, and the liveness check notices a dead peer.
            return
        except OSError as exc:
            if self._closed:
                return
            raise NetworkError(f"cannot send to {address[0]}:{address[1]}: {exc}") from exc
        self.counters.sent += 1
        self.counters.sent_bytes += len(datagram)
        peer = self._secured.get(address)
        if peer is not None:
            peer.sent_bytes[0] += len(datagram)

    def sent_bytes_to(self, address) -> int:
        """Bytes sent to one secured peer (all bytes sent when it has no keys:
        an unencrypted transport serves one peer)."""
        peer = self._secured.get(address)
        return self.counters.sent_bytes if peer is None else peer.sent_bytes[0]

    def receive(self, timeout: float | None) -> Received | None:
        """One verified (and, from the secured peer, opened) datagram, or
        None when ``timeout`` passes first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed:
            # Read first and wait only when the queue is empty: datagrams come
            # in bursts (a frame's fragments), and a select() per datagram of
            # a burst would cost a system call each for nothing.
            try:
                data, address = self.sock.recvfrom(2048, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    ready, _, _ = select.select([self.sock], [], [], remaining)
                except (OSError, ValueError):
                    return None  # closed under us
                if not ready:
                    return None
                continue
            except ConnectionRefusedError:
                continue
            except OSError:
                return None
            now = time.monotonic_ns()
            self.counters.received += 1
            self.counters.received_bytes += len(data)
            try:
                header, payload = decode_datagram(data)
            except ProtocolError:
                self.counters.malformed += 1
                continue
            sealed = False
            peer = self._secured.get(address)
            if peer is not None and peer.opener is not None and not is_unsealed_crypto(
                    header, payload):
                try:
                    payload = memoryview(peer.opener.open(data[:HEADER_SIZE], payload))
                except CryptoError as exc:
                    cause = getattr(exc, "reason", "rejected")
                    self.counters.rejected[cause] = self.counters.rejected.get(cause, 0) + 1
                    continue
                sealed = True
            lost = self._tracker.seen(header.ptype, header.sequence)
            if lost:
                self.counters.lost[header.ptype] = self.counters.lost.get(header.ptype, 0) + lost
            return Received(header, payload, address, now, sealed)
        return None

    def close(self) -> None:
        self._closed = True
        self.sock.close()

    def __enter__(self) -> UdpTransport:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def parse_address(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """'host', 'host:port', '[v6]:port' -> (host, port), with a clear error."""
    text = text.strip()
    host, port = text, default_port
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise NetworkError(f"bad address {text!r}: missing ']'")
        host, rest = text[1:end], text[end + 1:]
        if rest.startswith(":"):
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = _port(port_text, text)
    if not host:
        raise NetworkError(f"bad address {text!r}: no host name")
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise NetworkError(f"cannot resolve {host!r}: {exc.strerror}",
                           hint="check the host name, or give an IP address") from exc
    return info[0][4][0], port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise NetworkError(f"bad address {whole!r}: the port must be 1-65535")
    return int(text)
