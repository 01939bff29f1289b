"""What both ends of a session must agree on, and the hooks its services plug into.

Timeouts: the host drops a client silent for ``PEER_TIMEOUT_S`` and the
client gives up on (or starts reconnecting to) a host silent as long; each
side sends something at least every ``KEEPALIVE_S`` so neither mistakes an
idle peer for a gone one.  They live here, once, because the two loops only
work when both use the same figures.

Input, audio, bitrate adaptation and benchmarking each plug into a session
as a service instead of growing the host's and client's control loops: the
loops call these hooks, a service overrides the ones it needs.  Hooks run on the loop's
control thread (host) or receive thread (client) unless said otherwise, so
they must return quickly; a service that needs to block runs its own thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rootstream.protocol import Config, Header, PacketType

PEER_TIMEOUT_S = 2.0  # silence after which the peer is gone
KEEPALIVE_S = 0.5  # the longest either side stays quiet; well under PEER_TIMEOUT_S

# send(ptype, payload): one datagram to the session's peer, sent at once.
Sender = Callable[[PacketType, bytes], None]


@dataclass(frozen=True)
class SessionInfo:
    address: tuple
    session_id: int
    peer_name: str
    config: Config  # what the host announced
    # The hello's capabilities (host side): e.g. Capability.AUDIO when the client
    # wants sound.  0 on the client side, which reads the config's instead.
    peer_capabilities: int = 0


class Service:
    """No-op defaults for every hook."""

    name = "service"

    def session_started(self, session: SessionInfo, send: Sender) -> None:
        """A session began; ``send`` reaches the peer until session_ended."""

    def handle(self, header: Header, payload: memoryview) -> bool:
        """A datagram of a type the loop does not consume (INPUT on the host,
        AUDIO on the client) from the session's peer.  True when taken."""
        return False

    def on_control(self, message: object) -> None:
        """A CONTROL message from the session's peer, after the loop acted on it."""

    def tick(self, now_ns: int) -> None:
        """Called every ~50 ms while a session runs (timers, periodic sends)."""

    def session_ended(self, reason: str) -> None:
        """The session ended (bye, timeout, replaced, stop): release what it held."""

    def close(self) -> None:
        """The host or client is shutting down."""


class ClientService(Service):
    """Client-side services may also see the presenter (on the main thread)."""

    def attach_presenter(self, presenter) -> None:
        """The window is open: register event listeners, draw overlays."""

    def frame_presented(self, frame, presented_ns: int) -> None:
        """A picture is on screen (presenting thread): ``frame`` is its
        AssembledFrame (``capture_ms``: host capture clock), shown at
        ``presented_ns`` (client monotonic clock).  Lip sync listens here."""

    def picture_presented(self, picture, frame, presented_ns: int) -> None:
        """The same moment with the decoded picture too (an av.VideoFrame), for a
        service that reads pixels: the bench reads the test pattern's marker."""
