"""The client's microphone, sent to the host (`connect --mic`; off by default).

Announced with Capability.MICROPHONE in the hello; sent only when the host's
config has the bit too (an older host would count AUDIO from a client as
unexpected).  A thread of its own reads the default microphone of the
client's sound server (the `pulse` capture, source @DEFAULT_SOURCE@) in
chunks of one frame and sends each Opus frame the moment it is complete,
with the host sound's low-delay settings (rootstream.audio.host_service:
5 ms frames, 128 kbit/s, each frame carrying a copy of the previous one), as
AUDIO datagrams to the host.  It stops when the session ends.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from functools import partial

from rootstream.audio.opus import OpusEncoder
from rootstream.audio.sender import AudioSender
from rootstream.errors import RootStreamError
from rootstream.protocol import Capability, PacketType
from rootstream.session import ClientService, Sender, SessionInfo
from rootstream.stage import ThreadGuard

FRAME_MS = 5  # the host sound's frame: a frame leaves 5 ms after its first sample
BITRATE = 128_000
JOIN_TIMEOUT_S = 2.0


def _open_pulse(server: str | None, chunk_samples: int):
    from rootstream.audio.capture.pulse import PulseCapture

    # device None: the server's default source, i.e. the user's microphone.
    return PulseCapture(server=server, device=None, chunk_samples=chunk_samples)


class ClientMicrophone(ClientService):
    name = "microphone"
    wants = Capability.MICROPHONE

    def __init__(self, *, server: str | None = None, log: Callable[[str], None] = print,
                 opener: Callable[..., object] = _open_pulse) -> None:
        self._server = server
        self._log = log
        self._opener = opener
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.counters: Counter[str] = Counter()
        self.guard = ThreadGuard()  # a bug in the microphone thread ends the session (tick)

    def session_started(self, session: SessionInfo, send: Sender) -> None:
        self._halt()
        if not session.config.capabilities & Capability.MICROPHONE:
            self._log("rootstream: the host takes no microphone (it runs an older version "
                      "or --no-mic)")
            return
        self._stop = threading.Event()
        self._thread = self.guard.thread("microphone", partial(self._run, send, self._stop))
        self._thread.start()

    def tick(self, now_ns: int) -> None:
        self.guard.check()

    def session_ended(self, reason: str) -> None:
        self._halt()

    def close(self) -> None:
        self._halt()

    def _run(self, send: Sender, stop: threading.Event) -> None:
        encoder = OpusEncoder(frame_ms=FRAME_MS, bitrate=BITRATE)
        try:
            capture = self._opener(self._server, encoder.frame_samples)
        except RootStreamError as exc:
            self._log(f"rootstream: microphone not sent: {exc}")
            return
        sender = AudioSender(encoder)
        try:
            while not stop.is_set():
                for payload in sender.push(capture.read()):
                    send(PacketType.AUDIO, payload)
                    self.counters["mic_frames"] += 1
        except RootStreamError as exc:
            if not stop.is_set():
                self._log(f"rootstream: microphone stopped: {exc}")
        finally:
            capture.close()

    def _halt(self) -> None:
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(JOIN_TIMEOUT_S)
