"""The host's session loop: wait for a client, then stream to it.

The caller's thread (``serve``) runs the control channel: the handshake and
pairing (rootstream.crypto.gate), hello/config, keepalives, keyframe
requests, stats, bye, liveness, the services (input, sound, adaptive
bitrate) and the periodic report.  The picture flows through
rootstream.host.video's two threads.

One client at a time.  Another client gets one small refusal ("busy"),
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
from dataclasses import dataclass, replace

from rootstream.crypto.seal import SEAL_OVERHEAD
from rootstream.host.adaptive import AdaptiveBitrate
from rootstream.host.video import HOST_STAGES, VideoPipeline
from rootstream.machine import describe_machine, process_cpu_ns
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
    decode_control,
    encode_control,
)
from rootstream.session import KEEPALIVE_S, PEER_TIMEOUT_S, Service, SessionInfo
from rootstream.stats import JsonStatsWriter, StatsCollector, format_report


@dataclass
class HostOptions:
    source: str = "auto"
    output: str | None = None  # a kms connector or an x11 RandR output; the portal asks
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
    # Share the clipboard (UTF-8 text) with clients started with it too
    # (rootstream.clipboard); off by default, since a clipboard holds secrets.
    clipboard: bool = False
    # Play a client's microphone (`connect --mic`) into a virtual source
    # "rootstream microphone" for the session (rootstream.audio.mic_host).
    mic: bool = False
    # Show a room code: guests who type it watch without pairing (rootstream.crypto.room).
    room: bool = False
    # What a viewer's request for control does (rootstream.host.handoff): ask, free, locked;
    # and whether room guests may take control (with free only).
    handoff: str = "ask"
    guests_control: bool = False


@dataclass
class _Session:
    address: tuple
    session_id: int
    client_name: str
    started: float
    last_heard: float
    info: SessionInfo | None = None


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
        if options.mic:
            from rootstream.audio.mic_host import HostMicrophone

            self.services.append(HostMicrophone(log=log, stats=self.stats))
        if options.clipboard:
            from rootstream.clipboard.service import ClipboardService

            self.services.append(ClipboardService("host", options.display, log=log))
        self._json = JsonStatsWriter(options.stats_json) if options.stats_json else None
        self._stop = threading.Event()
        self._session: _Session | None = None
        self._session_lock = threading.Lock()
        self._pending_peer_name = ""
        self.sessions_served = 0
        self.last_client_stats: StatsReport | None = None
        self.transport = UdpTransport((options.bind, options.port),
                                      require_sealing=not options.insecure)
        try:
            # Sealing adds SEAL_OVERHEAD bytes to every payload: fragments shrink to fit.
            max_payload = MAX_PAYLOAD if options.insecure else MAX_PAYLOAD - SEAL_OVERHEAD
            self.video = VideoPipeline(options, transport=self.transport, stats=self.stats,
                                       max_payload=max_payload, log=log)
            self.gate = None if options.insecure else _open_gate(options, log)
        except BaseException:
            self.transport.close()
            raise
        self.machine = describe_machine()  # told to clients in the config
        self.host_name = options.host_name or socket.gethostname()
        if options.adaptive:
            self.services.append(AdaptiveBitrate(
                options.bitrate, options.min_bitrate, apply=self.video.set_bitrate,
                sent_bytes=lambda: self.transport.counters.sent_bytes,
                apply_fec=self.video.set_fec_share, fec_share=options.fec_share, log=log))

    # -- the control channel ---------------------------------------------------------------

    def serve(self) -> None:
        _favour_this_thread()
        video = self.video
        video.start(self._destination, self._stop)
        self.log(f"rootstream host: {video.capture.name} {video.width}x{video.height}@"
                 f"{self.options.fps}, {video.encoder.name}, listening on "
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
                # A stage that failed ends the session with a reason the client
                # can tell apart from a host that was merely stopped.
                failed = self.video.failure is not None
                self._end_session(ByeReason.ERROR if failed else ByeReason.NORMAL)
            self._stop.set()
            video.join()
            self._report()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.stop()
        for service in self.services:
            service.close()
        self.transport.close()
        self.video.close()
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
            self.video.request_keyframe()
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
            self.video.take_wishes(hello)
            self.stats.new_session()
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
        elif (hello.capabilities ^ session.info.peer_capabilities) & Capability.AUDIO:
            # The client found it cannot play sound (no device) and says so with
            # a new hello: the sound service starts over as --no-audio would have.
            session.info = replace(session.info, peer_capabilities=hello.capabilities)
            if self.audio is not None:
                self.audio.session_started(session.info, self._sender(address))
        self.video.request_keyframe()

    def _config(self, session: _Session) -> Config:
        caps = Capability.H264 if self.options.codec == "h264" else Capability.HEVC
        if self.options.fec_share > 0:
            caps |= Capability.FEC
        if self.audio is not None and self.audio.available:
            caps |= Capability.AUDIO
        if any(service.can_inject() for service in self.services if hasattr(service, "can_inject")):
            caps |= Capability.INPUT  # else the client sends no input, and says why
        for service in self.services:  # optional features (rumble, ...) say what they offer
            caps |= getattr(service, "offers", 0)
        video = self.video
        return Config(codec=Codec.H264 if self.options.codec == "h264" else Codec.HEVC,
                      width=video.width, height=video.height, fps=video.fps,
                      bitrate_kbps=video.bitrate // 1000, capabilities=caps,
                      session_id=session.session_id, host_name=self.host_name,
                      encoder=video.encoder.name, capture=video.capture.name,
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
        self.video.drop_pending()
        if self.options.max_sessions is not None and (
                self.sessions_served >= self.options.max_sessions):
            self._stop.set()

    def _sender(self, address):
        # A service's own thread may send after the session ended: an encrypted
        # transport then drops the payload rather than send it in clear.
        def send(ptype: PacketType, payload: bytes) -> None:
            self.transport.send(ptype, payload, address)
        return send

    def _destination(self) -> tuple | None:
        """Where the picture goes: the session's client, or nowhere."""
        session = self._session
        return None if session is None else session.address

    def _send_control(self, message, address) -> None:
        self.transport.send(PacketType.CONTROL, encode_control(message), address)

    def _report(self) -> None:
        video = self.video
        self.stats.set_total("dropped_frames", video.frames_dropped)
        self.stats.set_total("bitrate_kbps", video.encoder.bitrate // 1000)
        if video.sender.pacer is not None:
            self.stats.set_total("paced_frames", video.sender.frames_paced)
        self.stats.set_total("fec_percent", round(video.fec_share * 100))
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


def _favour_this_thread() -> None:
    """Input first: the control thread, which injects the client's input, asks
    for a higher priority than everything else on the host (the game
    included), so a key press never waits for the scheduler behind a frame.
    That needs root or CAP_SYS_NICE; without it nothing changes.  (Lowering
    the video threads instead needs no privilege, but lets a busy game starve
    the stream: measured +1 ms host p50 with the client on the same 2 cores.)"""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -5)
    except (OSError, AttributeError):
        pass


def _open_gate(options: HostOptions, log):
    from pathlib import Path

    from rootstream.crypto.gate import HostGate
    from rootstream.crypto.identity import Identity
    from rootstream.crypto.trust import TrustStore

    directory = Path(options.config_dir) if options.config_dir else None
    identity = Identity.load_or_create(directory)
    return HostGate(identity, TrustStore.open(directory), pairing=options.pair,
                    room=options.room, log=log, now=time.monotonic())


def _now_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def _fmt(address) -> str:
    return f"{address[0]}:{address[1]}"


def default_host_name() -> str:
    return os.environ.get("ROOTSTREAM_NAME") or socket.gethostname()
