"""The host's side of the client's microphone: AUDIO from the client -> "rootstream microphone".

Offered in the config (Capability.MICROPHONE) unless the host runs with
``--no-mic``; used only for a client whose hello asked (`connect --mic`).
For such a session the virtual source is created (rootstream.audio.mic_source),
the client's AUDIO datagrams go into a jitter buffer of their own (the one
the client uses for the host's sound: loss concealment, adaptive delay), and
a playout thread writes 5 ms at a time into the virtual source's sink through
libpulse-simple (20 ms ahead of its clock), whose blocking write paces it at the sound card's rate.
When the session ends the thread stops and the source disappears.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial

from rootstream.audio.jitter import JitterBuffer
from rootstream.audio.mic_source import SINK, VirtualMicrophone
from rootstream.errors import ProtocolError, RootStreamError
from rootstream.protocol import Capability, Header, PacketType
from rootstream.protocol.audio import AudioPayload
from rootstream.session import Sender, Service, SessionInfo
from rootstream.stage import ThreadGuard

PLAYOUT_SAMPLES = 240  # 5 ms at 48 kHz per write
# What the sink holds ahead of its clock: the playout thread may be late by this
# much before the source falls silent.  On a busy 2-core box 10 ms gave 40 ms
# gaps, 15 ms a 3 ms gap, 20 ms none (p50 36-37 ms once settled), 30 ms 5 ms more.
PLAYOUT_LATENCY_MS = 20
JOIN_TIMEOUT_S = 2.0


class HostMicrophone(Service):
    name = "microphone"

    def __init__(self, *, server: str | None = None, log: Callable[[str], None] = print,
                 stats=None) -> None:
        self._server = server
        self._log = log
        self._stats = stats
        self._lock = threading.Lock()
        self._jitter: JitterBuffer | None = None
        self._source: VirtualMicrophone | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.counters: Counter[str] = Counter()
        self.guard = ThreadGuard()  # a bug in the playout thread ends the session (tick)
        # Why no virtual source can be made here ("" while it can): then the
        # config does not offer the microphone and clients keep theirs.
        self.unavailable = "" if shutil.which("pactl") else "pactl is not installed"

    @property
    def offers(self) -> int:
        return 0 if self.unavailable else Capability.MICROPHONE

    def session_started(self, session: SessionInfo, send: Sender) -> None:
        self._halt()
        if not session.peer_capabilities & Capability.MICROPHONE:
            return
        try:
            self._source = VirtualMicrophone(self._server)
        except RootStreamError as exc:
            self.unavailable = str(exc)
            self._log(f"rootstream host: the client's microphone is not played: {exc}"
                      + (f" ({exc.hint})" if exc.hint else "") + "; not offered again")
            return
        with self._lock:
            self._jitter = JitterBuffer()
        self._stop = threading.Event()
        self._thread = self.guard.thread("microphone", partial(self._playout, self._stop))
        self._thread.start()
        self._log("rootstream host: the client's microphone plays into 'rootstream microphone'")

    def handle(self, header: Header, payload: memoryview) -> bool:
        if header.ptype != PacketType.AUDIO:
            return False
        try:
            audio = AudioPayload.parse(payload)
        except ProtocolError:
            self.counters["mic_malformed"] += 1
            return True
        with self._lock:
            if self._jitter is None:
                self.counters["mic_unexpected"] += 1
                return True
            self._jitter.push(audio, time.monotonic_ns())
        self.counters["mic_frames"] += 1
        return True

    def tick(self, now_ns: int) -> None:
        self.guard.check()

    def session_ended(self, reason: str) -> None:
        self._halt()

    def close(self) -> None:
        self._halt()

    def _playout(self, stop: threading.Event) -> None:
        from rootstream.audio.pulse_simple import PA_STREAM_PLAYBACK, PulseStream

        try:
            stream = PulseStream(PA_STREAM_PLAYBACK, server=self._server, device=SINK,
                                 latency_ms=PLAYOUT_LATENCY_MS, stream_name="rootstream microphone")
        except RootStreamError as exc:
            self._log(f"rootstream host: the client's microphone is not played: {exc}")
            return
        try:
            while not stop.is_set():
                with self._lock:
                    jitter = self._jitter
                    if jitter is None:
                        break
                    now = time.monotonic_ns()
                    pcm = jitter.read(PLAYOUT_SAMPLES, now)
                    captured = jitter.last_read_captured_ns
                if captured is not None and self._stats is not None:
                    # Client capture -> written to the source's sink, plus the sink's latency.
                    self._stats.record("mic", now - captured + stream.latency_ns())
                stream.write(pcm.tobytes())  # blocks: the server's clock paces this loop
        except RootStreamError as exc:
            if not stop.is_set():
                self._log(f"rootstream host: the client's microphone stopped: {exc}")
        finally:
            stream.close()

    def _halt(self) -> None:
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(JOIN_TIMEOUT_S)
        with self._lock:
            self._jitter = None
        source, self._source = self._source, None
        if source is not None:
            source.close()
