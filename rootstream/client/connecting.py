"""The client's way into a session and back: handshake, hello, reconnecting.

Part of ``Client`` (rootstream.client.control), kept apart because it is its
own story: the first session is asked for with a Noise handshake (when
encrypted) and a hello repeated every ``HELLO_INTERVAL_S`` until the config
comes or ``CONNECT_TIMEOUT_S`` passes; a host that goes silent is asked
again (a fresh handshake: it may have restarted with new keys) until the
reconnect timeout, while the presenter keeps the last picture up; a config
with a new session id means a new session, and every service starts over.
"""

from __future__ import annotations

import socket
import time

from rootstream.crypto.client_keys import ClientKeys
from rootstream.crypto.handshake import REASON_UNKNOWN_HOST_KEY, HandshakeRefused
from rootstream.errors import CryptoError, NetworkError
from rootstream.protocol import Capability, Config, Hello, IdrReason, PacketType
from rootstream.session import PEER_TIMEOUT_S, SessionInfo

HELLO_INTERVAL_S = 0.25
CONNECT_TIMEOUT_S = 5.0


class Connecting:
    """The session-request half of ``Client``: its attributes are the Client's."""

    def _hello(self) -> Hello:
        wants = Capability.H264 | Capability.HEVC | Capability.FEC
        if self.audio is not None and not self.audio.unavailable:
            wants |= Capability.AUDIO  # not once the device failed: the host stops sending
        for service in self.services:  # optional features (rumble, ...) say what they take
            wants |= getattr(service, "wants", 0)
        return Hello(capabilities=wants,
                     max_width=self.options.want_size[0], max_height=self.options.want_size[1],
                     client_name=self.options.client_name or socket.gethostname(),
                     want_fps=self.options.want_fps,
                     want_bitrate_kbps=self.options.want_bitrate_kbps)

    def _connect(self) -> Config:
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while not self._configured.is_set():
            if self._handshake_error is not None:
                raise self._handshake_error
            if self._stop.is_set():
                raise NetworkError(f"the host refused the session: {self._reason}",
                                   hint="another client may be connected")
            if time.monotonic() > deadline:
                mode = ("" if self.options.insecure else
                        "; if the host runs with --insecure, add --insecure here too")
                raise NetworkError(
                    f"no answer from {self.options.host[0]}:{self.options.host[1]} "
                    f"within {CONNECT_TIMEOUT_S:g} s",
                    hint="is `rootstream host` running there, and is UDP port "
                         f"{self.options.host[1]} open?{mode}")
            self._request_session()
            self._configured.wait(HELLO_INTERVAL_S)
        assert self._config is not None
        return self._config

    def _reconnect(self, now: float) -> bool:
        """The host is silent: ask for a session again, until the timeout.

        The presenter keeps the last picture on screen meanwhile.  Returns
        False when the session is over.
        """
        if self.options.reconnect_timeout <= 0:
            self.log(f"rootstream: the host went silent for {PEER_TIMEOUT_S:g} s")
            self._finish("host went silent")
            return False
        if self._reconnecting_since is None:
            self._reconnecting_since = now
            self.video.keyframes.want()
            # The host may have restarted with new keys: handshake again.
            self.transport.secure(None)
            self.stats.count("reconnecting")
            self.log(f"rootstream: reconnecting: no word from the host for "
                     f"{now - self._last_heard:.1f} s (giving up after "
                     f"{self.options.reconnect_timeout:g} s)")
        elif now - self._reconnecting_since > self.options.reconnect_timeout:
            self.log(f"rootstream: the host did not come back within "
                     f"{self.options.reconnect_timeout:g} s")
            self._finish("host went silent")
            return False
        if now - self._last_sent > HELLO_INTERVAL_S:
            self._request_session()
        return True

    def _request_session(self) -> None:
        """Ask the host for a session: a handshake first when encrypted, then hello.

        Every attempt uses a fresh handshake (the host drops a repeated INIT
        as a replay); hello goes sealed once the keys exist.
        """
        if self._keys is not None and self.transport.secured_peer is None:
            self._initiator = self._keys.initiator()
            self.transport.send(PacketType.CONTROL, self._initiator.start(), self.options.host,
                                seal=False)
            self._last_sent = time.monotonic()
            return
        self._send(self._hello())

    def _on_crypto(self, data: bytes) -> None:
        """A handshake RESPONSE or refusal (unsealed by nature)."""
        initiator = self._initiator
        if initiator is None:
            self.stats.count("dropped_unexpected")
            return
        try:
            initiator.receive(data)
        except HandshakeRefused as exc:
            # Refused while guessing the host is this machine (no pairing entry):
            # the real story is that we never paired with it.
            error = ClientKeys.not_paired(self._keys.host_label) if (
                self._keys.assumed_self and exc.reason == REASON_UNKNOWN_HOST_KEY) else exc
            self._handshake_error = error
            self._finish(str(error))
            return
        except CryptoError:
            self.stats.count("dropped_unauthenticated")  # a late or forged response
            return
        self._initiator = None
        self.transport.secure(self.options.host, initiator.keys)
        self._request_session()  # hello, sealed, at once

    def _resume(self, config: Config) -> None:
        """The host answered again: carry on, from a keyframe."""
        assert self._config is not None and self._reconnecting_since is not None
        away = time.monotonic() - self._reconnecting_since
        if config.session_id != self._config.session_id:
            # A new session (the host restarted or dropped us): its frame
            # numbers and clock are new, so forget the old ones.
            for service in self.services:
                service.session_ended("reconnecting")
            self.receiver.new_session()
            self.video.drain()
            info = SessionInfo(self.options.host, config.session_id, config.host_name, config)
            for service in self.services:
                service.session_started(info, self._sender)
        self._config = config
        self._reconnecting_since = None
        self._last_heard = time.monotonic()
        self.result.reconnects += 1
        self.log(f"rootstream: reconnected to {config.host_name} after {away:.1f} s")
        self.video.keyframes.want(IdrReason.STARTUP, urgent=True)
        self._ask_keyframe_if_due(time.monotonic())


__all__ = ["CONNECT_TIMEOUT_S", "HELLO_INTERVAL_S", "Connecting"]
