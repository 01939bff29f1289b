"""How a viewer's session starts and ends on the host: the door of rootstream.host.control.

``Host`` (rootstream.host.control) runs the control channel; this mixin holds
the path a session takes in and out of it, which grew too long to share a
module with the channel itself:

- a hello from a client that finished its handshake starts a session (or is
  refused: busy, full, other settings), is answered with the config, and
  starts the first viewer's services or joins the room's sound;
- ``_end_session`` ends one (bye, timeout, a restart), moves control and the
  first place on, and closes what it held;
- the senders the services get, each sealed for its session.

It reads and writes the Host's attributes (viewers, video, seats, room,
transport, gate, services, options): it is the Host's code, in a file of its
own, not a separate object with a state of its own.
"""

from __future__ import annotations

import secrets
from dataclasses import replace

from rootstream.host.viewers import Viewer
from rootstream.net.fanout import ViewerOutlet
from rootstream.protocol import Bye, ByeReason, Capability, Codec, Config, Hello, PacketType
from rootstream.session import PEER_TIMEOUT_S, SessionInfo


class SessionLifecycle:
    """The start/leave path of the Host's sessions (mixed into rootstream.host.control.Host)."""

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
        if self.repairs.offered:
            caps |= Capability.REPAIR  # lost fragments are sent again when asked for
        video = self.video
        return Config(codec=Codec.H264 if self.options.codec == "h264" else Codec.HEVC,
                      width=video.width, height=video.height, fps=video.fps,
                      bitrate_kbps=video.bitrate // 1000, capabilities=caps,
                      session_id=session.session_id, host_name=self.host_name,
                      encoder=video.encoder.name, capture=video.capture.name,
                      host_system=self.machine.system, host_cpu=self.machine.cpu,
                      host_cpus=self.machine.cpus, host_software=self.machine.software)

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

    def _audio_sender(self):
        """Sound goes to every viewer that asked for it, each sealed with its keys."""
        def send(ptype: PacketType, payload: bytes) -> None:
            for viewer in self.viewers.list():
                if viewer.wants_audio:
                    self.transport.send(ptype, payload, viewer.address)
        return send


def _fmt(address) -> str:
    return f"{address[0]}:{address[1]}"
