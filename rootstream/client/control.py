"""The client's session loop: ask for a stream, reassemble, decode, present.

Threads, each owning one stage:

- ``receive``: the socket: VIDEO payloads into the receiver stage
  (rootstream.net.receiver), each complete frame on to the decode stage;
  CONTROL messages, keepalives, keyframe requests and stats out, liveness;
- ``decode`` (rootstream.client.video): every complete frame in order,
  never a P-frame after a loss until a keyframe arrives; the newest decoded
  picture wins;
- the caller's thread (``run``): the presenter and its window events (SDL
  wants the thread that made the window).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial

from rootstream.client.connecting import Connecting
from rootstream.client.handoff import ClientControl
from rootstream.client.options import ClientOptions, ClientResult
from rootstream.client.pair import session_keys
from rootstream.client.repair import RepairRequests
from rootstream.client.report import CLIENT_STAGES, STATS_REPORT_S, ClientFigures
from rootstream.client.video import DecodeStage
from rootstream.decode import open_decoder
from rootstream.errors import RootStreamError
from rootstream.net.receiver import VideoReceiver
from rootstream.net.udp import UdpTransport, is_unsealed_crypto
from rootstream.present import open_presenter
from rootstream.protocol import (
    Bitrate,
    Bye,
    ByeReason,
    Capability,
    Codec,
    Config,
    IdrRequest,
    Keepalive,
    PacketType,
    Ping,
    ProtocolError,
    decode_control,
    encode_control,
)
from rootstream.session import KEEPALIVE_S, PEER_TIMEOUT_S, ClientService, SessionInfo
from rootstream.stage import StageError, describe, run_stage
from rootstream.stats import JsonStatsWriter, StatsCollector

HOST_FAILED = "the host stopped after an error"
# The receive loop's chores (expiry, keyframe and repair requests, the services'
# ticks, stats, keepalives) cost tens of µs a pass; run after every datagram they
# made a 720p frame's 17 datagrams take 0.36 ms to arrive instead of ~0.1.  They
# wait while datagrams are queued, but never longer than this under a flood.
BURST_CHORES_S = 0.002
# A bye before the config: why the host would not start a session.
_REFUSALS = {
    ByeReason.BUSY: "the host is busy with another client",
    ByeReason.FULL: "the host is full: as many viewers watch as its --viewers allows",
    ByeReason.SETTINGS: "others watch this host with other settings than the ones asked for",
}


class Client(Connecting):
    """A rootstream client.  ``run()`` blocks until the stream ends.  Asking for a
    session and reconnecting are in rootstream.client.connecting."""

    def __init__(self, options: ClientOptions, *, log: Callable[[str], None] = print,
                 services: list[ClientService] | None = None):
        self.options = options
        self.log = log
        self.services: list[ClientService] = list(services or [])
        self.stats = StatsCollector("client", CLIENT_STAGES)
        self._input = None
        if options.input:
            from rootstream.input.client_service import ClientInput

            self._input = ClientInput(figures=self.live_figures, log=log)
            self.services.insert(0, self._input)
        self.audio = None
        if options.audio:
            from rootstream.audio.client_service import ClientAudio

            self.audio = ClientAudio(stats=self.stats, log=log,
                                     tell_host=lambda: self._send(self._hello()))
            self.services.append(self.audio)
        if options.clipboard:
            from rootstream.clipboard.service import ClipboardService

            self.services.append(ClipboardService("client", log=log))
        if options.mic:
            from rootstream.audio.mic_client import ClientMicrophone

            self.services.append(ClientMicrophone(log=log))
        # Who holds control among the host's viewers; only the holder's input leaves.
        self.handoff = ClientControl(self._input, ask=options.control, log=log)
        self.services.append(self.handoff)
        self.json = JsonStatsWriter(options.stats_json) if options.stats_json else None
        # Encrypted by default: the host's key comes from pairing, looked up
        # before any socket exists so "not paired" is the first thing said.
        self._keys = None if options.insecure else session_keys(options)
        self._initiator = None
        self._handshake_error: RootStreamError | None = None
        self.transport = UdpTransport(("0.0.0.0" if ":" not in options.host[0] else "::", 0),
                                      require_sealing=not options.insecure)
        if self.transport.small_receive_buffer:
            log(f"rootstream: the kernel granted only {self.transport.receive_buffer // 2048} KiB "
                "for received datagrams, less than a large keyframe needs; raise it with "
                "`sysctl -w net.core.rmem_max=8388608` (or run as root)")
        self.result = ClientResult()
        self._stop = threading.Event()
        self._reason = ""
        self._config: Config | None = None
        self._configured = threading.Event()
        self.receiver = VideoReceiver()  # fragments in, frames out
        # Asks the host again for lost fragments; rides the receive loop.
        self.services.append(RepairRequests(self.receiver, enabled=options.repair))
        self.video = DecodeStage(self.stats)  # frames in, pictures out; the keyframe rule
        self.figures = ClientFigures(self)
        self._last_heard = time.monotonic()
        self._last_sent = 0.0
        self._reconnecting_since: float | None = None  # set while the host is silent
        self._notice_shown = False

    # -- the caller's thread: connect, then present ------------------------------------------

    def run(self) -> ClientResult:
        receiver = threading.Thread(target=run_stage, name="receive", daemon=True,
                                    args=("receive", self._receive_loop, self._stage_failed))
        receiver.start()
        presenter = None
        try:
            config = self._connect()
            self.result.config = config
            codec = "hevc" if config.codec == Codec.HEVC else "h264"
            self.video.keyframes.refresh = bool(config.capabilities & Capability.REFRESH)
            decoder = open_decoder(self.options.decoder, codec=codec)
            self.video.start(decoder, self._stop, self._stage_failed)
            presenter = open_presenter(self.options.present, width=config.width,
                                       height=config.height,
                                       title=f"rootstream: {config.host_name}",
                                       fullscreen=self.options.fullscreen)
            for service in self.services:
                service.attach_presenter(presenter)
            self.log(f"rootstream: connected to {config.host_name} "
                     f"({config.width}x{config.height}@{config.fps}, "
                     f"{config.bitrate_kbps / 1000:g} Mbit/s), showing with {presenter.name}")
            if presenter.chosen_because:
                self.log(f"rootstream: presenter {presenter.name} (auto): "
                         f"{presenter.chosen_because}")
            run_stage("present", partial(self._present_loop, presenter), self._stage_failed,
                      passes=(RootStreamError,))
        except KeyboardInterrupt:
            self._finish("interrupted")
        finally:
            if self._configured.is_set() and self._reason not in ("host said bye", HOST_FAILED):
                failed = self.result.failure is not None
                self._send(Bye(ByeReason.ERROR if failed else ByeReason.NORMAL))
            self._stop.set()
            receiver.join(timeout=2)
            self.video.close()
            if self._configured.is_set():
                for service in self.services:
                    service.session_ended(self._reason or "stopped")
            for service in self.services:
                service.close()
            if presenter is not None:
                presenter.close()
            self.figures.report()
            self.transport.close()
            if self.json:
                self.json.close()
            if self.figures.trace is not None:
                self.figures.trace.close()
        self.result.reason = self._reason
        return self.result

    def stop(self) -> None:
        self._finish("stopped")

    def _present_loop(self, presenter) -> None:
        start = time.monotonic()
        next_report = start + self.options.stats_interval
        while not self._stop.is_set():
            for event in presenter.poll_events():
                if event.kind == "quit":
                    self._finish("window closed")
                elif event.kind == "key" and event.pressed and event.key in ("F11",) and not (
                        self._input is not None and self._input.capturing):
                    # While input is captured F11 belongs to the host; Ctrl+Alt+Shift+F
                    # toggles fullscreen instead.
                    presenter.toggle_fullscreen()
            decoded = self.video.pictures.take(timeout=0.005)
            now = time.monotonic()
            self._show_liveness(presenter)
            if decoded is not None:
                presenter.present(decoded.picture)
                self.figures.account(decoded)
            if self.options.frames and self.result.frames_presented >= self.options.frames:
                self._finish(f"showed {self.options.frames} frames")
            if self.options.seconds and now - start >= self.options.seconds:
                self._finish(f"ran {self.options.seconds:g} s")
            if now >= next_report:
                self.figures.report()
                next_report = now + self.options.stats_interval

    def _show_liveness(self, presenter) -> None:
        """While reconnecting, the last picture stays up with a notice over it."""
        away = self._reconnecting_since is not None
        if away == self._notice_shown or not hasattr(presenter, "set_overlay"):
            return
        self._notice_shown = away
        presenter.set_overlay([f"reconnecting to {self.options.host[0]}..."] if away else None)

    def live_figures(self) -> dict:
        """Cumulative figures for the stats overlay; any thread, resets nothing."""
        return self.figures.live_figures()

    def _stage_failed(self, error: StageError) -> None:
        self._stopped(error, describe(error))

    def _stopped(self, error: RootStreamError, line: str) -> None:
        """A stage stopped the session: the first one's reason is said and kept."""
        if self.result.failure is None:
            self.result.failure = error
            self.log(f"rootstream: {line}")
        self._finish(str(error))

    def _finish(self, reason: str) -> None:
        if not self._reason:
            self._reason = reason
        self._stop.set()

    # -- the receive thread ------------------------------------------------------------------

    def _receive_loop(self) -> None:
        next_stats = time.monotonic() + STATS_REPORT_S
        reading_since: float | None = None  # a burst is being read; its chores wait
        try:
            while not self._stop.is_set():
                received = self.transport.receive(timeout=0 if reading_since is not None else 0.05)
                now = time.monotonic()
                if received is not None:
                    header, payload, address, received_ns, sealed = received
                    if address[:2] != self.options.host[:2]:
                        self.stats.count("dropped_foreign")
                    elif is_unsealed_crypto(header, payload):
                        self._on_crypto(bytes(payload))
                    elif self._keys is not None and not sealed:
                        # Encrypted session: anything unsealed is a forgery.
                        self.stats.count("dropped_unauthenticated")
                    else:
                        self._last_heard = now
                        self._on_datagram(header, payload, received_ns)
                    # A frame's datagrams come in a burst: read them all before
                    # the chores below, which ahead of its last one delay it.
                    reading_since = now if reading_since is None else reading_since
                    if now - reading_since < BURST_CHORES_S:
                        continue
                reading_since = None
                if not self._configured.is_set():
                    continue
                if self._reconnecting_since is not None or (
                        now - self._last_heard > PEER_TIMEOUT_S):
                    if not self._reconnect(now):
                        break
                    continue
                if self.receiver.expire(time.monotonic_ns()):
                    self.video.keyframes.want(urgent=True)
                self._ask_keyframe_if_due(now)
                for service in self.services:
                    service.tick(time.monotonic_ns())
                if now >= next_stats:
                    self._send_stats()
                    next_stats = now + STATS_REPORT_S
                elif now - self._last_sent > KEEPALIVE_S:
                    self._send(Keepalive(int(now * 1000) & 0xFFFFFFFF))
        except StageError as exc:  # a service's thread failed (stage.ThreadGuard, in tick)
            self._stage_failed(exc)
        except RootStreamError as exc:
            self._stopped(exc, f"receiver stopped: {exc}")

    def _on_datagram(self, header, payload, received_ns: int) -> None:
        if header.ptype == PacketType.VIDEO:
            if not self.video.ready.is_set():
                return  # the decode thread asks for a keyframe once it is ready
            frame = self.receiver.push(payload, header.timestamp_ms, received_ns)
            if frame is None:
                return
            self.result.frames_received += 1
            if frame.keyframe:  # IDRs on the wire: what each costs every viewer shows here
                self.stats.count("keyframes_received")
            if frame.lost_before and not frame.keyframe:
                # The decoder will skip this frame: ask now, not after the queue.
                self.video.keyframes.want()
                self._ask_keyframe_if_due(time.monotonic())
            self.video.offer(frame)
            return
        if header.ptype != PacketType.CONTROL:
            if not any(service.handle(header, payload) for service in self.services):
                self.stats.count("dropped_unexpected")
            return
        try:
            message = decode_control(payload)
        except ProtocolError:
            self.stats.count("dropped_malformed")
            return
        if isinstance(message, Config):
            if not self._configured.is_set():
                self._config = message
                self.result.bitrate_kbps = message.bitrate_kbps
                info = SessionInfo(self.options.host, message.session_id, message.host_name,
                                   message)
                for service in self.services:
                    service.session_started(info, self._sender)
                self._configured.set()
            elif self._reconnecting_since is not None:
                self._resume(message)
        elif isinstance(message, Bitrate):
            if message.bitrate_kbps != self.result.bitrate_kbps:
                self.log(f"rootstream: the host set the bitrate to "
                         f"{message.bitrate_kbps / 1000:.2f} Mbit/s")
            self.result.bitrate_kbps = message.bitrate_kbps
        elif isinstance(message, Bye):
            if not self._configured.is_set() and message.reason in _REFUSALS:
                self._finish(_REFUSALS[message.reason])
            elif (message.reason == ByeReason.TIMEOUT and self.options.reconnect_timeout > 0
                  and self._reconnecting_since is None):
                # The host thought us gone while we were cut off: we are not.
                self._reconnect(time.monotonic())
            elif message.reason == ByeReason.ERROR:
                self.log("rootstream: the host stopped streaming after an error (its log "
                         "says which)")
                self._finish(HOST_FAILED)
            else:
                self.log("rootstream: the host ended the session")
                self._finish("host said bye")
        elif isinstance(message, (Keepalive, Ping)):
            pass  # liveness is any datagram at all
        for service in self.services:
            service.on_control(message)

    def _ask_keyframe_if_due(self, now: float) -> None:
        reason = self.video.keyframes.due(now)
        if reason is None:
            return
        request = IdrRequest(reason, self.video.decoded_frame_id)
        # Twice: a lost request costs a whole retry interval of frozen
        # picture, a duplicate costs the host nothing (one event, one IDR).
        self._send(request)
        self._send(request)
        self.stats.count("idr_requests")

    def _sender(self, ptype: PacketType, payload: bytes) -> None:
        self.transport.send(ptype, payload, self.options.host)

    def _send(self, message) -> None:
        self.transport.send(PacketType.CONTROL, encode_control(message), self.options.host)
        self._last_sent = time.monotonic()

    def _send_stats(self) -> None:
        self._send(self.figures.stats_message())

