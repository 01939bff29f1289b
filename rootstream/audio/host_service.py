"""The host's sound service: what the desktop plays, sent as AUDIO datagrams.

The backend is checked once when the host starts (opened and closed): with
``auto`` and no sound server the host streams video alone and says why in
one log line; a backend named outright that cannot open is an error, since
the user asked for it.  The capture itself is opened when a session starts
whose client asked for sound (Capability.AUDIO in its hello), on a thread of
its own, and closed when the session ends: a host nobody watches holds no
recording stream.

With several viewers the sound serves the room (``serves_room``): the host
hands it a session that asks for sound while any viewer does, and a sender
that fans out to each viewer that asked.  A new such session while the
capture runs and sound is still wanted (the first viewer left, the next is
first now) only swaps the sender: closing and reopening the capture there
would cut every listener's sound for the time a sound server takes to open
a stream, and restart the Opus stream's redundancy.

The ``audio`` thread reads one frame's worth of sound (blocking), encodes
it as one Opus frame (AudioSender: each payload carries the previous frame
as well) and sends the payload at once through the session's ``send``,
which seals it on an encrypted session.  Sound never waits behind video: it
has its own thread, and a 182-byte payload every 5 ms needs no pacing.

Frames are 5 ms, not 10: a frame can leave only once its last sample is
captured, so the frame length is latency the client can never win back
(measured on loopback: the jitter buffer's floor fell from 13 to 8 ms).
The price is twice the datagrams (about 400 instead of 340 kbit/s on the
wire with redundancy, sealing and headers).

Figures in the host's stats line: ``audio_frames`` (payloads sent),
``audio_errors`` (capture or send failures that stopped the sound) and the
``audio`` ring: from the end of a chunk's capture to its last payload
leaving (encode + seal + send).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial

from rootstream.audio.capture import open_audio_capture
from rootstream.audio.chunk import samples_to_ns
from rootstream.audio.opus import OpusEncoder
from rootstream.audio.sender import AudioSender
from rootstream.errors import AudioError, RootStreamError
from rootstream.protocol import Capability, PacketType
from rootstream.session import Sender, Service, SessionInfo
from rootstream.stage import ThreadGuard

AUDIO_CHOICES = ("auto", "pulse", "test", "none")
STATS_EVERY_NS = 500_000_000
JOIN_TIMEOUT_S = 2.0  # a read returns within one chunk; a hung sound server is left behind


class HostAudio(Service):
    """Capture this host's sound and send it to the session's client.

    ``backend`` is an ``open_audio_capture`` name; ``options`` go to it
    (e.g. ``{"server": "unix:/run/pulse/native"}``).  ``stats`` is the
    host's StatsCollector (optional).  ``opener`` replaces
    ``open_audio_capture`` (a program can hand in its own source).
    """

    name = "audio"
    serves_room = True  # host.seats keeps it running while anyone watches

    def __init__(self, backend: str = "auto", *, options: dict | None = None, stats=None,
                 log: Callable[[str], None] = print, frame_ms: float = 5,
                 bitrate: int = 128_000,
                 opener: Callable[..., object] = open_audio_capture):
        if backend not in AUDIO_CHOICES or backend == "none":
            raise AudioError(f"unknown audio capture backend {backend!r}",
                             hint="choose one of " + ", ".join(AUDIO_CHOICES))
        self._options = dict(options or {})
        self._opener = opener
        self._stats = stats
        self._log = log
        self._frame_ms = frame_ms
        self._bitrate = bitrate
        self.counters: Counter[str] = Counter()
        self.unavailable = ""  # why there is no sound, when there is none
        self.backend = self._check(backend)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._send: Sender | None = None  # the audio thread sends through the newest one
        self.guard = ThreadGuard()  # a bug in the audio thread ends the session (tick)
        self._next_stats_ns = 0

    @property
    def available(self) -> bool:
        """A capture backend opened when the host started."""
        return self.backend is not None

    def _check(self, backend: str) -> str | None:
        """Open and close the backend and an encoder once; the backend's name, or
        None (auto only) when either fails."""
        try:
            OpusEncoder(frame_ms=self._frame_ms, bitrate=self._bitrate)
            capture = self._opener(backend, **self._options)
        except AudioError as exc:
            if backend != "auto":
                raise
            self.unavailable = "; ".join([str(exc), *exc.details])
            self._log(f"rootstream host: sound off: {self.unavailable} (start PulseAudio or "
                      "pipewire-pulse for sound; --audio none says no sound on purpose)")
            return None
        name = capture.name
        capture.close()
        self._log(f"rootstream host: sound from {name}")
        return name

    # -- hooks ----------------------------------------------------------------

    def session_started(self, session: SessionInfo, send: Sender) -> None:
        wanted = self.backend is not None and bool(session.peer_capabilities & Capability.AUDIO)
        thread = self._thread
        if wanted and thread is not None and thread.is_alive() and not self._stop.is_set():
            self._send = send  # the room goes on: the capture keeps running
            return
        self._halt()
        if self.backend is None:
            return
        if not wanted:
            self.counters["audio_declined"] += 1  # the client runs with --no-audio
            return
        self._send = send
        self._stop = threading.Event()
        self._thread = self.guard.thread("sound", partial(self._run, self._stop), name="audio")
        self._thread.start()

    def tick(self, now_ns: int) -> None:
        self.guard.check()
        if now_ns >= self._next_stats_ns:
            self._next_stats_ns = now_ns + STATS_EVERY_NS
            self._publish()

    def session_ended(self, reason: str) -> None:
        self._halt()
        self._publish()

    def close(self) -> None:
        self._halt()
        self._publish()

    # -- the audio thread ------------------------------------------------------

    def _run(self, stop: threading.Event) -> None:
        try:
            encoder = OpusEncoder(frame_ms=self._frame_ms, bitrate=self._bitrate)
            # Chunks of one frame: a frame leaves as soon as its last sample is
            # in, not when a longer chunk holding it completes.
            options = {"chunk_samples": encoder.frame_samples, **self._options}
            capture = self._opener(self.backend, **options)
        except AudioError as exc:
            self._fail("could not open the sound capture", exc)
            return
        try:
            start_ns = getattr(capture, "start_ns", None)
            if capture.name == "test" and start_ns is not None:
                # What tests and benchmarks measure marks against: sample p of
                # the test signal was captured at start + p / 48000 s.
                self._log(f"rootstream host: audio test signal starts at monotonic "
                          f"{start_ns} ns, marks every 100 ms")
            sender = AudioSender(encoder)
            while not stop.is_set():
                chunk = capture.read()
                payloads = sender.push(chunk)
                send = self._send  # swapped when the room's first viewer changes
                for payload in payloads:
                    send(PacketType.AUDIO, payload)
                if payloads:
                    self.counters["audio_frames"] += len(payloads)
                    if self._stats is not None:
                        done = chunk.captured_ns + samples_to_ns(chunk.samples, capture.rate)
                        self._stats.record("audio", time.monotonic_ns() - done)
        except RootStreamError as exc:
            if not stop.is_set():
                self._fail("sound stopped", exc)
        finally:
            capture.close()

    def _fail(self, what: str, exc: RootStreamError) -> None:
        self.counters["audio_errors"] += 1
        reason = "; ".join([str(exc), *exc.details])
        self._log(f"rootstream host: {what}: {reason}; the picture goes on without it")

    def _halt(self) -> None:
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(JOIN_TIMEOUT_S)
            if thread.is_alive():
                self.counters["audio_errors"] += 1
                self._log("rootstream host: the sound capture did not stop within "
                          f"{JOIN_TIMEOUT_S:g} s (a hung sound server?); left behind")

    def _publish(self) -> None:
        if self._stats is None:
            return
        for name in ("audio_frames", "audio_errors", "audio_declined"):
            self._stats.set_total(name, self.counters[name])
