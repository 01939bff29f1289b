"""The host's session loop: wait for a client, then stream to it.

Threads, each owning one stage (rules of the road: latest frame wins):

- ``capture``: grab -> convert to NV12 -> one-slot mailbox;
- ``encode``: mailbox -> encode -> fragment -> send, stamping each frame;
- the caller's thread (``serve``): the control channel: hello/config,
  keepalives, IDR requests, stats, bye, liveness, and the periodic report.

One client at a time.  A second client's hello gets one small ``bye (busy)``,
never more bytes than it sent.  A client silent for ``PEER_TIMEOUT_S`` is
dropped and the host waits for the next one.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rootstream.adaptive import AdaptiveBitrate
from rootstream.benchrun.cpu import process_cpu_ns
from rootstream.benchrun.machine import describe_machine
from rootstream.capture import open_capture
from rootstream.capture.marker import MARKER_HEIGHT, MARKER_WIDTH
from rootstream.capture.test_pattern import MAX_SIZE
from rootstream.convert import NV12Converter
from rootstream.crypto.seal import SEAL_OVERHEAD
from rootstream.encode import open_encoder
from rootstream.errors import RootStreamError
from rootstream.frame import CapturedFrame, HostStamps
from rootstream.mailbox import Mailbox
from rootstream.net.pacing import PacedSender
from rootstream.net.udp import DEFAULT_PORT, UdpTransport, is_unsealed_crypto
from rootstream.protocol import (
    MAX_PAYLOAD,
    Bye,
    ByeReason,
    Capability,
    Codec,
    Config,
    Hello,
    IdrRequest,
    Keepalive,
    PacketType,
    Ping,
    Pong,
    ProtocolError,
    StatsReport,
    VideoFragmenter,
    decode_control,
    encode_control,
)
from rootstream.service import Service, SessionInfo
from rootstream.stats import JsonStatsWriter, StatsCollector, format_report

PEER_TIMEOUT_S = 2.0
KEEPALIVE_S = 0.5
# A keyframe is what a client waits on after a loss; losing it too costs
# another round trip of frozen picture, so it carries more parity.
KEYFRAME_FEC_SHARE = 0.5
HOST_STAGES = ("convert", "encode", "send", "host")


@dataclass
class HostOptions:
    source: str = "auto"
    display: str | None = None
    encoder: str = "auto"
    size: tuple[int, int] = (1280, 720)  # the test pattern's size; a screen has its own
    fps: int = 60
    bitrate: int = 10_000_000  # the ceiling when adaptive
    min_bitrate: int = 500_000  # adaptive bitrate never goes below this
    adaptive: bool = True  # follow the client's reports of loss, delay and rate
    pacing: bool = True  # spread a large frame's datagrams (rootstream.net.pacing)
    codec: str = "h264"
    bind: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    fec_share: float = 0.2
    stats_interval: float = 5.0
    stats_json: str | None = None
    max_sessions: int | None = None  # stop after this many sessions (tests, benchmarks)
    host_name: str = ""
    insecure: bool = False  # no handshake, nothing sealed: for measuring only
    pair: bool = False  # show a pairing code and accept new clients with it
    config_dir: str | None = None  # identity and trust store (default: XDG config dir)
    # The client's keyboard, mouse and gamepads: an injector name (auto, uinput,
    # xtest, record) or "none".  xtest injects into ``display`` (default $DISPLAY).
    # Off unless asked for, so a program embedding Host never types into a desktop
    # by surprise; `rootstream host` asks for auto.
    input: str = "none"
    # This machine's sound: a capture name (auto, pulse, test) or "none".  auto
    # without a sound server streams the picture alone.  Off unless asked for,
    # like input; `rootstream host` asks for auto.
    audio: str = "none"


@dataclass
class _Session:
    address: tuple
    session_id: int
    client_name: str
    started: float
    last_heard: float
    info: SessionInfo | None = None


@dataclass
class _PendingFrame:
    frame: object  # av.VideoFrame from the converter's pool
    stamps: HostStamps


class Host:
    """A rootstream host.  ``serve()`` blocks until ``stop()`` (or max_sessions)."""

    def __init__(self, options: HostOptions, *, log: Callable[[str], None] = print,
                 services: list[Service] | None = None):
        self.options = options
        self.log = log
        self.services: list[Service] = list(services or [])
        self.stats = StatsCollector("host", HOST_STAGES)
        if options.input != "none":
            from rootstream.input.host_service import HostInput, injector_options

            # First in line: every INPUT datagram is offered to it before anyone else.
            self.services.insert(0, HostInput(
                options.input, options=injector_options(options.input, options.display),
                stats=self.stats, log=log))
        self.audio = None
        if options.audio != "none":
            from rootstream.audio.host_service import HostAudio

            # Checked before anything else opens: a named backend that fails is an error.
            self.audio = HostAudio(options.audio, stats=self.stats, log=log)
            self.services.append(self.audio)
        self._json = JsonStatsWriter(options.stats_json) if options.stats_json else None
        self._stop = threading.Event()
        self._session: _Session | None = None
        self._session_lock = threading.Lock()
        self._idr = threading.Event()
        self._pending_peer_name = ""
        # A still screen produces no frames: a new client or a keyframe request
        # makes the capture stage grab the current picture anyway.
        self._want_picture = threading.Event()
        self._mailbox: Mailbox[_PendingFrame] = Mailbox("encode")
        self.sessions_served = 0
        self.last_client_stats: StatsReport | None = None

        opts = {"fps": options.fps}
        if options.display:
            opts["display"] = options.display
        if options.source in ("test", "auto"):
            opts["width"], opts["height"] = options.size
        self.capture = open_capture(options.source, **opts)
        try:
            width, height = self.capture.width, self.capture.height
            self.converter = NV12Converter(width, height, self.capture.pixel_format, pool_size=4)
            self.encoder = open_encoder(options.encoder, width=width, height=height,
                                        fps=options.fps, bitrate=options.bitrate,
                                        codec=options.codec)
            self.transport = UdpTransport((options.bind, options.port),
                                          require_sealing=not options.insecure)
        except BaseException:
            self.capture.close()
            raise
        self.width, self.height = width, height
        # What the current session streams: the options, or what its client asked
        # for (_take_wishes).  The capture and encode threads read the tuple, one
        # attribute, so they never see half of a change.
        self.fps, self.bitrate = options.fps, options.bitrate
        self._stream = (width, height, self.fps, self.bitrate)
        self._capture_settings = (width, height, self.fps)  # owned by the capture thread
        self._bitrate_wish: int | None = None  # applied once by the encode thread
        self.machine = describe_machine()  # told to clients in the config
        # Sealing adds SEAL_OVERHEAD bytes to every payload: fragments shrink to fit.
        self.gate = None if options.insecure else _open_gate(options, log)
        max_payload = MAX_PAYLOAD if options.insecure else MAX_PAYLOAD - SEAL_OVERHEAD
        self.fragmenter = VideoFragmenter(fec_share=options.fec_share, max_payload=max_payload)
        self.host_name = options.host_name or socket.gethostname()
        self.pacer = PacedSender() if options.pacing else None
        self._frame_interval_ns = 1_000_000_000 // options.fps
        self._next_bitrate: int | None = None  # set by the control thread, applied by encode
        self._fec_share = options.fec_share  # follows the loss the client reports
        if options.adaptive:
            self.services.append(AdaptiveBitrate(
                options.bitrate, options.min_bitrate, apply=self._set_bitrate,
                sent_bytes=lambda: self.transport.counters.sent_bytes,
                apply_fec=self._set_fec_share, fec_share=options.fec_share, log=log))

    # -- the control channel ---------------------------------------------------------------

    def serve(self) -> None:
        threads = [threading.Thread(target=self._capture_loop, name="capture", daemon=True),
                   threading.Thread(target=self._encode_loop, name="encode", daemon=True)]
        for thread in threads:
            thread.start()
        self.log(f"rootstream host: {self.capture.name} {self.width}x{self.height}@"
                 f"{self.options.fps}, {self.encoder.name}, listening on "
                 f"{self.transport.address[0]}:{self.transport.address[1]}")
        next_report = time.monotonic() + self.options.stats_interval
        next_keepalive = time.monotonic()
        try:
            while not self._stop.is_set():
                received = self.transport.receive(timeout=0.1)
                now = time.monotonic()
                if received is not None:
                    self._on_datagram(received, now)
                session = self._session
                if session is not None:
                    if now - session.last_heard > PEER_TIMEOUT_S:
                        self.log(f"client {_fmt(session.address)} went silent; "
                                 "waiting for the next one")
                        self._end_session(ByeReason.TIMEOUT)
                    else:
                        if now >= next_keepalive:
                            self._send_control(Keepalive(_now_ms() & 0xFFFFFFFF),
                                               session.address)
                            next_keepalive = now + KEEPALIVE_S
                        for service in self.services:
                            service.tick(time.monotonic_ns())
                if now >= next_report:
                    self._report()
                    next_report = now + self.options.stats_interval
        finally:
            if self._session is not None:
                self._end_session(ByeReason.NORMAL)
            self._stop.set()
            self._mailbox.close()
            for thread in threads:
                thread.join(timeout=2)
            self._report()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.stop()
        for service in self.services:
            service.close()
        self.transport.close()
        self.capture.close()
        self.encoder.close()
        if self._json:
            self._json.close()

    def _on_datagram(self, received, now: float) -> None:
        header, payload, address = received.header, received.payload, received.address
        if is_unsealed_crypto(header, payload):
            self._on_crypto(bytes(payload), address, now)
            return
        if self.gate is not None and not received.sealed:
            # Encrypted host: only a client that finished the handshake is heard.
            self.stats.count("dropped_unauthenticated")
            return
        session = self._session
        if header.ptype != PacketType.CONTROL:
            if session is not None and address == session.address:
                session.last_heard = now
                if any(service.handle(header, payload) for service in self.services):
                    return
            self.stats.count("dropped_unexpected")
            return
        try:
            message = decode_control(payload)
        except ProtocolError:
            self.stats.count("dropped_malformed")
            return
        if isinstance(message, Hello):
            self._on_hello(message, address, now)
            return
        if isinstance(message, Ping) and (session is None or address != session.address):
            self._answer_ping(message, address, len(payload))
            return
        if session is None or address != session.address:
            self.stats.count("dropped_foreign")
            return
        session.last_heard = now
        if isinstance(message, IdrRequest):
            self._idr.set()
            self._want_picture.set()
            self.stats.count("idr_requests")
        elif isinstance(message, StatsReport):
            self.last_client_stats = message
        elif isinstance(message, Ping):
            self._answer_ping(message, address)
        elif isinstance(message, Bye):
            self.log(f"client {_fmt(address)} said bye; waiting for the next one")
            self._end_session(None)
            return
        for service in self.services:
            service.on_control(message)

    def _on_crypto(self, data: bytes, address, now: float) -> None:
        """Pairing and handshake messages, which travel unsealed."""
        if self.gate is None:
            self.stats.count("dropped_unauthenticated")
            return
        answer = self.gate.receive(data, address, now)
        if answer.keys is not None:
            session = self._session
            if session is not None and session.address != address:
                # Busy: one small refusal instead of a handshake response.
                refusal = self.gate.refuse_busy(address, len(data), now)
                if refusal is not None:
                    self.transport.send(PacketType.CONTROL, refusal, address, seal=False)
                self.stats.count("refused_busy")
                return
            if session is not None:
                self._end_session(None)  # the same client starting over
            # The session starts when the client's first sealed datagram opens.
            self.transport.secure(address, answer.keys)
            self._pending_peer_name = answer.peer_name
        if answer.reply is not None:
            self.transport.send(PacketType.CONTROL, answer.reply, address, seal=False)

    def _on_hello(self, hello: Hello, address, now: float) -> None:
        session = self._session
        if session is not None and session.address != address:
            # Busy: one refusal, smaller than the hello that caused it.
            self._send_control(Bye(ByeReason.BUSY), address)
            self.stats.count("refused_busy")
            return
        if session is None:
            if self.options.max_sessions is not None and (
                    self.sessions_served >= self.options.max_sessions):
                return
            # A paired client is known by the name it paired with, not by its claim.
            name = self._pending_peer_name if self.gate is not None else hello.client_name
            session = _Session(address, secrets.randbits(32), name, now, now)
            self._take_wishes(hello)
            with self._session_lock:
                self._session = session
            self.sessions_served += 1
            self.log(f"client {_fmt(address)} ({hello.client_name or 'unnamed'}) connected")
        session.last_heard = now
        # (Re)send the configuration: the client repeats hello until it has it.
        config = self._config(session)
        self._send_control(config, address)
        if session.info is None:
            session.info = SessionInfo(address, session.session_id, session.client_name, config,
                                       hello.capabilities)
            for service in self.services:
                service.session_started(session.info, self._sender(address))
        self._idr.set()
        self._want_picture.set()

    def _config(self, session: _Session) -> Config:
        caps = Capability.H264 if self.options.codec == "h264" else Capability.HEVC
        if self.options.fec_share > 0:
            caps |= Capability.FEC
        if self.audio is not None and self.audio.available:
            caps |= Capability.AUDIO
        return Config(codec=Codec.H264 if self.options.codec == "h264" else Codec.HEVC,
                      width=self.width, height=self.height, fps=self.fps,
                      bitrate_kbps=self.bitrate // 1000, capabilities=caps,
                      session_id=session.session_id, host_name=self.host_name,
                      encoder=self.encoder.name, capture=self.capture.name,
                      host_system=self.machine.system, host_cpu=self.machine.cpu,
                      host_cpus=self.machine.cpus, host_software=self.machine.software)

    def _answer_ping(self, ping: Ping, address, size: int | None = None) -> None:
        """Pong with our stamps and CPU time (rootstream bench's clock and load).

        Outside a session (``size`` given) only a ping at least as long as the
        pong is answered, so the answer never amplifies (docs/PROTOCOL.md §4).
        """
        arrived = time.monotonic_ns()
        cpu = process_cpu_ns()
        payload = encode_control(Pong(ping.probe_id, ping.t0_ns, arrived, time.monotonic_ns(),
                                      cpu_ns=cpu))
        if size is not None and size < len(payload):
            self.stats.count("dropped_short_ping")
            return
        self.transport.send(PacketType.CONTROL, payload, address)

    # -- a session's wishes: rootstream bench asks for each phase's stream -----------------

    def _take_wishes(self, hello: Hello) -> None:
        """Settle what a new session streams (docs/PROTOCOL.md §4): the test pattern
        takes the hello's size and frame rate, any source its bitrate; the rest
        comes from the options.  The capture and encode threads rebuild their own
        stage before their next frame (_follow_capture_wishes, _follow_wishes)."""
        width, height, fps = self.width, self.height, self.fps
        if self.capture.name == "test":
            (width, height), fps = self.options.size, self.options.fps
            w, h = hello.max_width, hello.max_height
            if (MARKER_WIDTH <= w <= MAX_SIZE[0] and MARKER_HEIGHT <= h <= MAX_SIZE[1]
                    and w % 2 == 0 and h % 2 == 0):
                width, height = w, h
            if 1 <= hello.want_fps <= 240:
                fps = hello.want_fps
        bitrate = self.options.bitrate
        if hello.want_bitrate_kbps:
            bitrate = min(max(hello.want_bitrate_kbps * 1000, 200_000), 500_000_000)
        self.width, self.height, self.fps, self.bitrate = width, height, fps, bitrate
        self._stream = (width, height, fps, bitrate)
        self._bitrate_wish = bitrate

    def _follow_capture_wishes(self) -> None:
        """Capture thread: a test pattern of the session's size and rate."""
        width, height, fps, _ = self._stream
        if (width, height, fps) == self._capture_settings:
            return
        capture = open_capture("test", width=width, height=height, fps=fps)
        self.converter = NV12Converter(width, height, capture.pixel_format, pool_size=4)
        self.capture, old = capture, self.capture
        self._capture_settings = (width, height, fps)
        old.close()

    def _follow_wishes(self, frame) -> bool:
        """Encode thread: an encoder for the session's size, rate and bitrate.  False
        for a frame of another size, captured before the session's wishes."""
        width, height, fps, bitrate = self._stream
        if (frame.width, frame.height) != (width, height):
            return False
        old = self.encoder
        if (old.width, old.height, old.fps) != (width, height, fps):
            self.encoder = open_encoder(old.name, width=width, height=height, fps=fps,
                                        bitrate=bitrate, codec=self.options.codec)
            old.close()
        wish, self._bitrate_wish = self._bitrate_wish, None
        if wish is not None and wish != self.encoder.bitrate:
            self.encoder.set_bitrate(wish)
        return True

    def _end_session(self, reason: ByeReason | None) -> None:
        session = self._session
        if session is None:
            return
        if reason is not None:
            self._send_control(Bye(reason), session.address)
        with self._session_lock:
            self._session = None
        if self.transport.secured_peer == session.address:
            self.transport.secure(None)
        if session.info is not None:
            why = "bye" if reason is None else ByeReason(reason).name.lower()
            for service in self.services:
                service.session_ended(why)
        self._mailbox.clear()
        if self.options.max_sessions is not None and (
                self.sessions_served >= self.options.max_sessions):
            self._stop.set()

    def _sender(self, address):
        def send(ptype: PacketType, payload: bytes) -> None:
            if self.gate is not None and self.transport.secured_peer != address:
                # The session ended (its keys are gone) while a service's own thread
                # was still sending: drop, never send its payload in clear.
                return
            self.transport.send(ptype, payload, address)
        return send

    def _send_control(self, message, address) -> None:
        self.transport.send(PacketType.CONTROL, encode_control(message), address)

    def _set_bitrate(self, bps: int) -> None:
        self._next_bitrate = bps

    def _apply_bitrate(self) -> None:
        bps, self._next_bitrate = self._next_bitrate, None
        if bps is None or bps == self.encoder.bitrate:
            return
        if not self.encoder.set_bitrate(bps):
            # x264 cannot raise its VBV ceiling in place: it reopened, and
            # its next frame is an IDR.
            self.stats.count("encoder_reopened")

    def _report(self) -> None:
        self.stats.set_total("dropped_frames", self._mailbox.dropped)
        self.stats.set_total("bitrate_kbps", self.encoder.bitrate // 1000)
        if self.pacer is not None:
            self.stats.set_total("paced_frames", self.pacer.frames_paced)
        self.stats.set_total("fec_percent", round(self._fec_share * 100))
        report = self.stats.report()
        client = self.last_client_stats
        if client is not None:
            report["client"] = {"frames_presented": client.frames_presented,
                                "frames_lost": client.frames_lost,
                                "p50_ms": client.client_p50_us / 1000,
                                "p99_ms": client.client_p99_us / 1000}
        if self._session is not None or report["fps"] > 0:
            self.log(format_report(report))
        if self._json:
            self._json.write(report)

    # -- the pipeline threads ----------------------------------------------------------------

    def _capture_loop(self) -> None:
        _yield_to_input()
        try:
            while not self._stop.is_set():
                if self._session is None:
                    time.sleep(0.02)
                    continue
                self._follow_capture_wishes()
                force = self._want_picture.is_set()
                self._want_picture.clear()
                captured: CapturedFrame | None = self.capture.grab(timeout=0.1, force=force)
                if captured is None:
                    continue
                frame = self.converter.convert(captured)
                self._mailbox.put(_PendingFrame(frame, captured.stamps))
        except RootStreamError as exc:
            self.log(f"rootstream host: capture stopped: {exc}")
            self._stop.set()

    def _encode_loop(self) -> None:
        _yield_to_input()
        try:
            while not self._stop.is_set():
                pending = self._mailbox.take(timeout=0.1)
                session = self._session
                if pending is None or session is None:
                    continue
                self._apply_bitrate()
                if not self._follow_wishes(pending.frame):
                    continue
                force = self._idr.is_set()
                if force:
                    self._idr.clear()
                units = self.encoder.encode(pending.frame, force_keyframe=force)
                stamps = pending.stamps
                stamps.encoded = time.monotonic_ns()
                capture_ms = (stamps.captured // 1_000_000) & 0xFFFFFFFF
                host_us = (stamps.encoded - stamps.captured) // 1000
                size = 0
                for unit in units:
                    payloads = self._fragment(unit, host_us)
                    self._send_video(payloads, session.address, capture_ms)
                    size += len(unit.data)
                stamps.sent = time.monotonic_ns()
                if units:
                    self.stats.frame(size)
                    self.stats.record("convert", stamps.converted - stamps.captured)
                    self.stats.record("encode", stamps.encoded - stamps.converted)
                    self.stats.record("send", stamps.sent - stamps.encoded)
                    self.stats.record("host", stamps.sent - stamps.captured)
        except RootStreamError as exc:
            self.log(f"rootstream host: encoder stopped: {exc}")
            self._stop.set()


    def _set_fec_share(self, share: float) -> None:
        self._fec_share = share  # a float store: the encode thread reads it per frame

    def _fragment(self, unit, host_us: int) -> list[bytes]:
        share = self._fec_share
        if unit.keyframe and share > 0:
            share = max(share, KEYFRAME_FEC_SHARE)
        self.fragmenter.fec_share = share  # only the encode thread uses the fragmenter
        return self.fragmenter.fragment(unit.data, keyframe=unit.keyframe, host_us=host_us)

    def _send_video(self, payloads: list[bytes], address, capture_ms: int) -> None:
        def send_batch(batch) -> None:
            self.transport.send_many(PacketType.VIDEO, batch, address, capture_ms)

        if self.pacer is None:
            send_batch(payloads)
            return
        self.pacer.send(payloads, send_batch, bitrate_bps=self.encoder.bitrate,
                        frame_interval_ns=self._frame_interval_ns)


def _yield_to_input() -> None:
    """Input first: the video threads run at a lower priority than the control
    thread that injects input, so on a busy machine a key press does not wait
    for the scheduler behind a frame (nice 10 for this thread only; Linux
    niceness is per thread, and lowering it needs no privilege)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (OSError, AttributeError):
        pass


def _open_gate(options: HostOptions, log):
    from pathlib import Path

    from rootstream.crypto.gate import HostGate
    from rootstream.crypto.identity import Identity
    from rootstream.crypto.trust import TrustStore

    directory = Path(options.config_dir) if options.config_dir else None
    identity = Identity.load_or_create(directory)
    return HostGate(identity, TrustStore.open(directory), pairing=options.pair, log=log,
                    now=time.monotonic())


def _now_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def _fmt(address) -> str:
    return f"{address[0]}:{address[1]}"


def default_host_name() -> str:
    return os.environ.get("ROOTSTREAM_NAME") or socket.gethostname()
