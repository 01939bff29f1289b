"""The host's session loop: wait for a client, then stream to it.

The caller's thread (``serve``) runs the control channel: the handshake and
pairing (rootstream.crypto.gate), hello/config, keepalives, keyframe
requests, stats, bye, liveness, the services (input, sound, adaptive
bitrate) and the periodic report.  The picture flows through
rootstream.host.video's two threads.

One client at a time by default; ``viewers=N`` (``host --viewers N``) lets
N watch the one capture and encode at once, each in its own encrypted
session (rootstream.host.viewers: the table, and the questions to ask it).
The first session's wishes set the stream and its reports set the rate;
only the input of the viewer holding control (rootstream.host.seats: the
first paired one until control moves) is injected, the others' is dropped
and counted.
Another client past the limit gets one small refusal ("busy" with one
viewer, "full" with several), never more bytes than it sent.  A client
silent for ``PEER_TIMEOUT_S`` is dropped and the others go on.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from rootstream.crypto.seal import SEAL_OVERHEAD
from rootstream.host.adaptive import AdaptiveBitrate
from rootstream.host.options import HostOptions, open_gate
from rootstream.host.room_policy import RoomPolicy
from rootstream.host.seats import Seats
from rootstream.host.video import HOST_STAGES, VideoPipeline
from rootstream.host.viewers import Viewer, Viewers
from rootstream.machine import describe_machine, process_cpu_ns
from rootstream.net.fanout import ViewerOutlet
from rootstream.net.udp import UdpTransport, is_unsealed_crypto
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
        self.viewers = Viewers(options.viewers)
        # Handshakes that gave keys but no hello yet: address -> (peer name, when).
        self._pending: dict[tuple, tuple[str, float]] = {}
        self._sound = False  # the sound service runs for the room (_follow_sound_wishes)
        self.sessions_served = 0
        self.last_client_stats: StatsReport | None = None
        self.transport = UdpTransport((options.bind, options.port),
                                      require_sealing=not options.insecure)
        try:
            # Sealing adds SEAL_OVERHEAD bytes to every payload: fragments shrink to fit.
            max_payload = MAX_PAYLOAD if options.insecure else MAX_PAYLOAD - SEAL_OVERHEAD
            self.video = VideoPipeline(options, transport=self.transport, stats=self.stats,
                                       max_payload=max_payload, log=log)
            self.gate = None if options.insecure else open_gate(options, log)
        except BaseException:
            self.transport.close()
            raise
        self.machine = describe_machine()  # told to clients in the config
        self.host_name = options.host_name or socket.gethostname()
        # The parity share: the first viewer's need, raised within a bound for others.
        self.room = RoomPolicy(options.fec_share, apply_fec=self.video.set_fec_share, log=log)
        if options.adaptive:
            self.services.append(AdaptiveBitrate(
                options.bitrate, options.min_bitrate, apply=self.video.set_bitrate,
                sent_bytes=self._first_sent_bytes,
                apply_fec=self.room.first_fec, fec_share=options.fec_share, log=log))
        # Who holds control: input, microphone and clipboard follow the holder.
        self.seats = Seats(self.services, mode=options.handoff,
                           guests_control=options.guests_control, send_control=self._send_control,
                           sender=self._service_sender, log=log, stats=self.stats)

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
                for viewer in self.viewers.list():
                    if now - viewer.last_heard > PEER_TIMEOUT_S:
                        self.log(f"client {_fmt(viewer.address)} went silent; "
                                 + ("waiting for the next one" if len(self.viewers) == 1
                                    else "the others go on"))
                        self._end_session(viewer, ByeReason.TIMEOUT)
                if self.viewers:
                    if now >= next_keepalive:
                        keepalive = Keepalive(_now_ms() & 0xFFFFFFFF)
                        for viewer in self.viewers.list():
                            self._send_control(keepalive, viewer.address)
                        next_keepalive = now + KEEPALIVE_S
                    for service in self.services:
                        service.tick(time.monotonic_ns())
                    self.seats.tick(now)
                self._expire_pending(now)
                if now >= next_report:
                    self._report()
                    next_report = now + self.options.stats_interval
        finally:
            # A stage that failed ends the sessions with a reason the clients
            # can tell apart from a host that was merely stopped.
            failed = self.video.failure is not None
            for viewer in reversed(self.viewers.list()):  # the first last: no promotions
                self._end_session(viewer, ByeReason.ERROR if failed else ByeReason.NORMAL)
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
        viewer = self.viewers.of(address)
        if header.ptype != PacketType.CONTROL:
            if viewer is not None:
                viewer.last_heard = now
                if not self.seats.may_control(viewer):
                    # Input (and microphone) belong to the holder of control alone.
                    viewer.count(f"dropped_{header.ptype.name.lower()}")
                    self.stats.count("dropped_not_in_control")
                    return
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
        if isinstance(message, Ping) and viewer is None:
            self._answer_ping(message, address, len(payload))
            return
        if viewer is None:
            self.stats.count("dropped_foreign")
            return
        viewer.last_heard = now
        first = self.viewers.is_first(viewer)
        if isinstance(message, IdrRequest):
            # Requests coalesce: every one made before the next frame is encoded,
            # or just after an IDR went out, is served by that one, whoever asked.
            # With refresh, one viewer's request costs the others nothing.
            self.stats.count("idr_requests")
            if self.room.keyframe_worth_it(viewer, watching=len(self.viewers),
                                           refreshes=self.video.refreshes, now=now):
                self.video.request_keyframe(coalesce=True)
            else:
                self.stats.count("idr_deferred")
        elif isinstance(message, StatsReport):
            viewer.last_stats = message
            if first:
                self.last_client_stats = message
            else:
                self.room.report(viewer, message)
        elif isinstance(message, Ping):
            self._answer_ping(message, address)
        elif isinstance(message, Bye):
            self.log(f"client {_fmt(address)} said bye; " + (
                "waiting for the next one" if len(self.viewers) == 1 else "the others go on"))
            self._end_session(viewer, None)
            return
        # The rate follows the first session; input and the rest the holder of control.
        self.seats.on_control(viewer, message, now, first=first)

    def _on_crypto(self, data: bytes, address, now: float) -> None:
        """Pairing and handshake messages, which travel unsealed."""
        if self.gate is None:
            self.stats.count("dropped_unauthenticated")
            return
        answer = self.gate.receive(data, address, now)
        if answer.keys is not None:
            viewer = self.viewers.of(address)
            if viewer is not None:
                self._end_session(viewer, None)  # the same client starting over
            elif self.viewers.full:
                # Busy (one viewer) or full (several): one small refusal instead
                # of a handshake response, never more bytes than the INIT.
                # Handshakes still waiting for their hello hold no place (a bench
                # phase that only pings, a client that gave up): the hello that
                # would make one viewer too many is refused in _start_session.
                refusal = self.gate.refuse_full(address, len(data), now, self.viewers.limit)
                if refusal is not None:
                    self.transport.send(PacketType.CONTROL, refusal, address, seal=False)
                self.stats.count("refused_busy" if self.viewers.limit == 1 else "refused_full")
                return
            # The session starts when the client's first sealed datagram opens.
            self.transport.secure(address, answer.keys)
            self._pending[address] = (answer.peer_name, now, answer.guest)
        if answer.reply is not None:
            self.transport.send(PacketType.CONTROL, answer.reply, address, seal=False)

    def _on_hello(self, hello: Hello, address, now: float) -> None:
        session = self.viewers.of(address)
        if session is None:
            session = self._start_session(hello, address, now)
            if session is None:
                return
        session.last_heard = now
        # (Re)send the configuration: the client repeats hello until it has it.
        config = self._config(session)
        self._send_control(config, address)
        first = self.viewers.is_first(session)
        if session.info is None:
            session.info = SessionInfo(address, session.session_id, session.client_name, config,
                                       hello.capabilities)
            if first:
                self._stream_services_start(session)
            else:
                self._follow_sound_wishes()
            self.seats.started(session)
        elif (hello.capabilities ^ session.info.peer_capabilities) & Capability.AUDIO:
            # The client found it cannot play sound (no device) and says so with
            # a new hello: the sound service starts over as --no-audio would have.
            session.info = replace(session.info, peer_capabilities=hello.capabilities)
            self._follow_sound_wishes()
        if len(self.viewers) == 1:
            # Alone, it gets a keyframe at once.  A viewer joining others asks
            # for one itself once its decoder is open (one sent now would
            # arrive before, and cost everyone a second): the room policy then
            # decides, and with refresh it waits for the next sweep instead.
            self.video.request_keyframe()

    def _start_session(self, hello: Hello, address, now: float) -> Viewer | None:
        """A new viewer from its first hello, or None when it is refused."""
        if self.viewers.full:
            # Busy or full: one refusal, smaller than the hello that caused it.
            busy = self.viewers.limit == 1
            self._send_control(Bye(ByeReason.BUSY if busy else ByeReason.FULL), address)
            self.stats.count("refused_busy" if busy else "refused_full")
            return self._refused(address)
        if self.options.max_sessions is not None and (
                self.sessions_served >= self.options.max_sessions):
            return None
        if self.viewers and not self.video.streams_wishes(hello):
            # Others watch: a later viewer gets what is streamed, and a bench
            # phase that needs other settings would measure the wrong thing.
            self.log(f"client {_fmt(address)} asked for other settings than the "
                     f"{self.video.describe_stream()} others watch; refused")
            self._send_control(Bye(ByeReason.SETTINGS), address)
            self.stats.count("refused_settings")
            return self._refused(address)
        # A paired client is known by the name it paired with, not by its claim.
        pending_name, _, guest = self._pending.pop(address, ("", now, False))
        name = pending_name if self.gate is not None else hello.client_name
        viewer = Viewer(address, secrets.randbits(32), name, now, now)
        if not self.viewers:
            self.video.take_wishes(hello)
            self.stats.new_session()
        else:
            viewer.outlet = ViewerOutlet(self.transport, address, pacing=self.options.pacing)
        if self.gate is None:
            self.transport.add_peer(address)  # its own sequence numbers, unsealed
        self.viewers.add(viewer)
        self.seats.joined(viewer, guest=guest, now=now)
        self.sessions_served += 1
        self.log(f"client {_fmt(address)} ({hello.client_name or 'unnamed'}) connected"
                 + (f"; {len(self.viewers)} watching" if self.viewers.limit > 1 else ""))
        return viewer

    def _refused(self, address) -> None:
        """A refused client's handshake keys go at once: it holds no place."""
        if self._pending.pop(address, None) is not None:
            self.transport.forget(address)

    def _stream_services_start(self, viewer: Viewer) -> None:
        """The first viewer's services (a new one, or the next after the first left);
        sound starts for the room, the holder's services follow control (seats)."""
        for service in self.seats.stream_services:
            if service is self.audio:
                self._follow_sound_wishes(restart=True)
            else:
                service.session_started(viewer.info, self._service_sender(viewer, service))

    def _follow_sound_wishes(self, restart: bool = False) -> None:
        """Sound runs while any viewer wants it (the first's session stands for
        the room), and goes to each one that does: it starts or stops only when
        that changes."""
        info = self.viewers.sound_session()
        wanted = info is not None and bool(info.peer_capabilities & Capability.AUDIO)
        if self.audio is not None and info is not None and (restart or wanted != self._sound):
            self.audio.session_started(info, self._audio_sender())
        self._sound = wanted

    def _service_sender(self, viewer: Viewer, service):
        return self._audio_sender() if service is self.audio else self._sender(viewer.address)

    def _expire_pending(self, now: float) -> None:
        """Keys of a handshake whose hello never came are dropped in time."""
        for address, (_, when, _) in list(self._pending.items()):
            if now - when > PEER_TIMEOUT_S:
                del self._pending[address]
                if self.viewers.of(address) is None:
                    self.transport.forget(address)

    def _config(self, session: Viewer) -> Config:
        caps = Capability.H264 if self.options.codec == "h264" else Capability.HEVC
        if self.options.fec_share > 0:
            caps |= Capability.FEC
        if self.video.refreshes:
            caps |= Capability.REFRESH
        if self.audio is not None and self.audio.available:
            caps |= Capability.AUDIO
        if any(service.can_inject() for service in self.services if hasattr(service, "can_inject")):
            caps |= Capability.INPUT  # else the client sends no input, and says why
        for service in self.services:  # optional features (rumble, ...) say what they offer
            caps |= getattr(service, "offers", 0)
        caps |= Capability.HANDOFF  # who holds control, in a state each viewer is sent
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

    def _end_session(self, session: Viewer, reason: ByeReason | None) -> None:
        if reason is not None:
            self._send_control(Bye(reason), session.address)
        was_first = self.viewers.remove(session)
        self.room.forget(session)
        self.transport.forget(session.address)
        if session.outlet is not None:
            session.outlet.close()
        why = "bye" if reason is None else ByeReason(reason).name.lower()
        if was_first and session.info is not None:
            self.seats.end_stream_services(why)
        self.seats.left(session, why)  # control moves on; what it held is released
        successor = self.viewers.first()
        if was_first and successor is not None:
            # The next viewer is the first now: sent inline, its reports steering
            # the rate.  The stream itself does not change.
            self.room.forget(successor)
            outlet, successor.outlet = successor.outlet, None
            if outlet is not None:
                outlet.close()
            self.log(f"client {_fmt(successor.address)} is the first viewer now")
            if successor.info is not None and not self._stop.is_set():
                self._stream_services_start(successor)
        if not was_first and self.viewers:
            self._follow_sound_wishes()  # it may have been the last one listening
        if not self.viewers:
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

    def _first_sent_bytes(self) -> int:
        """What went to the first viewer: the rate follows its path alone."""
        first = self.viewers.first()
        return self.transport.sent_bytes_to(None if first is None else first.address)

    def _audio_sender(self):
        """Sound goes to every viewer that asked for it, each sealed with its keys."""
        def send(ptype: PacketType, payload: bytes) -> None:
            for viewer in self.viewers.list():
                if viewer.wants_audio:
                    self.transport.send(ptype, payload, viewer.address)
        return send

    def _destination(self) -> tuple | None:
        """Where the picture goes: (the first viewer, the others' outlets), or nowhere."""
        first, outlets = self.viewers.destinations()
        return None if first is None else (first, outlets)

    def _send_control(self, message, address) -> None:
        self.transport.send(PacketType.CONTROL, encode_control(message), address)

    def _report(self) -> None:
        video = self.video
        self.stats.set_total("dropped_frames", video.frames_dropped)
        self.stats.set_total("bitrate_kbps", video.encoder.bitrate // 1000)
        if video.sender.pacer is not None:
            self.stats.set_total("paced_frames", video.sender.frames_paced)
        self.stats.set_total("fec_percent", round(video.fec_share * 100))
        self.stats.set_total("keyframes_sent", video.sender.keyframes_sent)
        if video.refreshes:
            self.stats.set_total("refresh_cycles", video.sender.refresh_starts_sent)
        if video.keyframes_coalesced:
            self.stats.set_total("keyframes_coalesced", video.keyframes_coalesced)
        report = self.stats.report()
        client = self.last_client_stats
        if client is not None:
            report["client"] = {"frames_presented": client.frames_presented,
                                "frames_lost": client.frames_lost,
                                "p50_ms": client.client_p50_us / 1000,
                                "p99_ms": client.client_p99_us / 1000}
        if len(self.viewers) > 1 or self.viewers.limit > 1:
            report["viewers"] = [v.figures() for v in self.viewers.list()]
        if self.viewers or report["fps"] > 0:
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


def _now_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def _fmt(address) -> str:
    return f"{address[0]}:{address[1]}"
