"""What a client is asked to do (ClientOptions) and what it did (ClientResult)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rootstream.errors import RootStreamError
from rootstream.protocol import Config
from rootstream.recent import RecentList


@dataclass
class ClientOptions:
    host: tuple[str, int]
    present: str = "auto"
    fullscreen: bool = False
    frames: int | None = None  # stop after presenting this many frames
    seconds: float | None = None  # stop after this long
    stats_interval: float = 5.0
    stats_json: str | None = None
    read_markers: bool = True  # read the test pattern's frame number and capture time
    same_clock: bool = False  # host on this machine: marker capture time is on our clock
    # With same_clock: a JSON line per new marker with every stage's stamp
    # (rootstream.client.report.FrameTrace), where a slow change spent its time.
    frame_trace: str | None = None
    client_name: str = ""
    decoder: str = "auto"
    # What to ask the host for (0: its choice).  A test-pattern host takes the
    # size and frame rate, any host the bitrate; the config says what it chose.
    # ``rootstream bench`` sets them per phase.
    want_size: tuple[int, int] = (0, 0)
    want_fps: int = 0
    want_bitrate_kbps: int = 0
    # After PEER_TIMEOUT_S of silence, keep asking the host for a session this
    # long before giving up (0: end the session at once; the CLI's default is 10).
    reconnect_timeout: float = 0.0
    insecure: bool = False  # no handshake, nothing sealed: for measuring only
    config_dir: str | None = None  # identity and trust store (default: XDG config dir)
    host_label: str = ""  # the host as the user named it: the trust store's key for it
    # Send the keyboard, mouse and gamepads read in the SDL window to the host
    # (rootstream.input.client_service; other presenters have no window to read).
    input: bool = True
    # Ask for the host's sound and play it (rootstream.audio.client_service).
    audio: bool = True
    # Share the clipboard with a host started with --clipboard (rootstream.clipboard).
    clipboard: bool = False
    # Send the default microphone to a host that takes it (rootstream.audio.mic_client).
    mic: bool = False
    # Join the host's room with this code as a guest, without pairing
    # (rootstream.crypto.room): nothing is stored, the session is view only.
    room: str = ""
    # Ask for control as soon as the session starts (rootstream.protocol.handoff).
    control: bool = False
    # Ask the host for lost fragments again when it offers it (Capability.REPAIR,
    # rootstream.client.repair); False behaves as a client from before repair.
    repair: bool = True


@dataclass
class ClientResult:
    frames_presented: int = 0
    frames_received: int = 0
    frames_lost: int = 0
    reason: str = ""
    # Frame numbers read, in order shown: the most recent (rootstream.recent).
    markers: list[int] = field(default_factory=RecentList)
    config: Config | None = None
    bitrate_kbps: int = 0  # the host's latest announced encoder rate
    reconnects: int = 0
    # Why a stage of ours stopped the session (rootstream.stage), if one did.
    failure: RootStreamError | None = None
    longest_freeze_ms: float = 0.0  # longest gap between two pictures shown
    # When each picture was shown (monotonic ns), the most recent ones.
    present_ns: list[int] = field(default_factory=RecentList)
    first_picture_ns: int | None = None  # when the first picture was shown (joining viewers)
