"""What a host is started with (``rootstream host``'s options as one object),
and opening its gate: the identity and trust store that admit clients."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

from rootstream.net.udp import DEFAULT_PORT


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
    frame_trace: str | None = None  # a JSON line per frame sent, every stamp (bench_glass)
    max_sessions: int | None = None  # stop after this many sessions (tests, benchmarks)
    viewers: int = 1  # sessions at once, all fed from one capture and one encode
    # Recover viewers by intra refresh (a cycle this long), not keyframes: a
    # viewer that joins or loses a frame shows the picture once a cycle has
    # passed, and the others pay nothing for it.  0: keyframes, as before.
    refresh_ms: int = 0
    # Send lost fragments again when a client asks (Capability.REPAIR,
    # rootstream.host.repairs): a burst longer than the parity costs a round
    # trip instead of a keyframe.  False: offered to nobody (an older host).
    repair: bool = True
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


def open_gate(options: HostOptions, log):
    from pathlib import Path

    from rootstream.crypto.gate import HostGate
    from rootstream.crypto.identity import Identity
    from rootstream.crypto.trust import TrustStore

    directory = Path(options.config_dir) if options.config_dir else None
    identity = Identity.load_or_create(directory)
    return HostGate(identity, TrustStore.open(directory), pairing=options.pair,
                    room=options.room, log=log, now=time.monotonic())


def default_host_name() -> str:
    return os.environ.get("ROOTSTREAM_NAME") or socket.gethostname()
