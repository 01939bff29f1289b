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
How a session starts and ends (hello, config, refusals, bye, timeout) is
rootstream.host.sessions.  Another client past the limit gets one small
refusal ("busy" with one viewer, "full" with several), never more bytes than
it sent.  A client silent for ``PEER_TIMEOUT_S`` is dropped and the others go
on.  Lost fragments a client asks for again are sent by
rootstream.host.repairs.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable

from rootstream.crypto.seal import SEAL_OVERHEAD
from rootstream.host.adaptive import AdaptiveBitrate
from rootstream.host.options import HostOptions, open_gate
from rootstream.host.repairs import RepairDesk
from rootstream.host.room_policy import RoomPolicy
from rootstream.host.seats import Seats
from rootstream.host.sessions import SessionLifecycle
from rootstream.host.video import HOST_STAGES, VideoPipeline
from rootstream.host.viewers import Viewers
from rootstream.machine import describe_machine, process_cpu_ns
from rootstream.net.udp import UdpTransport, is_unsealed_crypto
from rootstream.protocol import (
    MAX_PAYLOAD,
    Bye,
    ByeReason,
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
from rootstream.protocol.repair import RepairRequest
from rootstream.session import KEEPALIVE_S, PEER_TIMEOUT_S, Service
from rootstream.stage import StageError
from rootstream.stats import JsonStatsWriter, StatsCollector, format_report


class Host(SessionLifecycle):
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
        self.repairs = RepairDesk(self.video.repairs, transport=self.transport,
                                  bitrate=lambda: self.video.encoder.bitrate, stats=self.stats)
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
        service_failed = False
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
        except StageError:
            service_failed = True  # a service thread's failure, raised by its tick
            raise
        finally:
            # A stage that failed (video, or a service's thread) ends the sessions
            # with a reason the clients can tell apart from a host merely stopped.
            failed = service_failed or self.video.failure is not None
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
        if isinstance(message, RepairRequest):
            self.repairs.serve(viewer, message)  # at once: the client holds its picture
            return
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

    def _first_sent_bytes(self) -> int:
        """What went to the first viewer: the rate follows its path alone."""
        first = self.viewers.first()
        return self.transport.sent_bytes_to(None if first is None else first.address)

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
