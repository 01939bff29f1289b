"""The client's sound service: AUDIO datagrams played through SDL, in step with the picture.

The playback (SDL audio with the adaptive jitter buffer, rootstream.audio.
playback) is opened when a session starts whose host announced sound
(Capability.AUDIO in its config), and closed when the session ends.  A
client that cannot open a sound device still shows the picture: the reason
is logged once, and the client (``tell_host``) says hello again without
audio, so the host stops sending sound as for ``--no-audio``; what arrived
meanwhile is counted as dropped.

The host starts sending sound the moment the session starts, while the
device takes a quarter of a second or more to open (on its own thread):
what arrives meanwhile waits in a short queue (``START_BACKLOG``) with its
arrival time and goes into the jitter buffer as soon as the device is open,
so a healthy session starts with nothing dropped.

Threads.  AUDIO datagrams arrive on the receive thread (``handle``) and go
straight into the jitter buffer; SDL's own thread decodes and plays them
as late as it can; shown pictures are reported from the presenting thread
(``frame_presented``).  The playback object guards its jitter buffer and
its lip-sync helper itself.

Lip sync.  A VIDEO datagram's ROOT timestamp is the frame's host capture
time in milliseconds (low 32 bits); an AUDIO payload's ``captured_ns`` is
the same host clock in full.  Every shown frame tells AudioSync how long
the picture took (client present time minus host capture time, the unknown
clock offset included), every fill of the sound device how long the sound
takes; the difference is the A/V offset, and the jitter buffer is asked to
hold the sound back by that much when it would run ahead.  The picture is
never delayed.

Figures in the client's stats line: ``audio_frames`` (frames received),
``audio_recovered`` (from a redundant copy), ``audio_lost`` (concealed),
``audio_underruns``, ``audio_dropped`` (datagrams not played: malformed or
no device) and ``av_offset_ms`` (sound minus picture latency, positive when
the sound is late; shown only while it is not zero).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from functools import partial

import numpy as np

from rootstream.audio.jitter import JitterBuffer
from rootstream.audio.playback import open_audio_playback
from rootstream.audio.sync import AudioSync
from rootstream.errors import AudioError, ProtocolError
from rootstream.protocol import Capability, Header, PacketType
from rootstream.protocol.audio import AudioPayload
from rootstream.recent import RecentList
from rootstream.session import ClientService, Sender, SessionInfo
from rootstream.stage import ThreadGuard

STATS_EVERY_NS = 500_000_000
OFFSETS_KEPT = 240  # A/V offsets remembered (at least): 2 minutes of stats ticks
# Sound that plays later than the buffer's target is cut (a frame, in phase,
# crossfaded) once it runs this late: below lip sync's ±20 ms, so a device
# slower than the host's clock by more than the playout ratio absorbs (SDL's
# disk driver is 1% slow) cannot carry the sound out of sync.  A sound card's
# drift (0.01%) never gets here; the ratio takes it.
MAX_LATE_MS = 10.0
# ``switch_interval_s`` makes Python hand the GIL over that often while sound
# plays (SDL's audio thread needs it within a fraction of its 5 ms buffer),
# and puts the process-wide setting back when the sound stops.  Off by
# default: through the real loops on loopback with a clocked device, 1 ms
# against Python's 5 ms measured capture-to-heard p50 23.1/23.1/32.2 ms
# against 23.6/24.8/29.1 ms, and no fewer underruns: no gain worth a global
# setting (bench/bench_audio_path.py compares the two).
SWITCH_INTERVAL_S = None
# capture_ms is the capture time truncated to the millisecond: on average it
# is half a millisecond early, which would read as that much extra picture latency.
HALF_MS_NS = 500_000
# AUDIO datagrams kept while the device opens: 0.5 s of 5 ms frames.  The
# soaks saw 1 to 7 arrive before an open finished (loaded machine); one that
# takes longer than this loses the oldest (counted as dropped), which the
# jitter buffer would cut as far too late anyway.
START_BACKLOG = 100


def host_capture_ns(capture_ms: int, reference_ns: int) -> int:
    """The full host time of a 32-bit millisecond stamp, near ``reference_ns``.

    ``reference_ns`` is a recent full stamp from the same clock (an AUDIO
    payload's ``captured_ns``); the stamp is taken as the one within ±24
    days of it, so the low-32-bit wrap every 49.7 days does not matter.
    """
    reference_ms = reference_ns // 1_000_000
    delta = (capture_ms - reference_ms) & 0xFFFFFFFF
    if delta >= 0x80000000:
        delta -= 0x100000000
    return (reference_ms + delta) * 1_000_000 + HALF_MS_NS


class PatientSync(AudioSync):
    """AudioSync that asks for a new extra delay only once its window of sound
    latencies holds nothing measured before the last change.

    The playback asks at every device fill (every 5 ms), but the window's
    median shows a change only half a window (16 fills) later: asking in
    between repeats the same correction each time, and the sound overshoots
    the picture by several times the error (measured: 100 ms late after
    asking for 60 ms).  Waiting one window per step makes each correction
    land once; a 100 ms offset is gone in two or three steps (under 0.5 s).
    """

    def __init__(self, **options):
        super().__init__(**options)
        self._fresh = 0  # sound latencies recorded since the last change

    def audio_played(self, host_captured_ns: int, client_heard_ns: int,
                     settling_ns: int = 0) -> None:
        # Only a buffer *short* of its target is settling toward it: added delay
        # comes a concealed frame per 100 ms, slower than a window.  A buffer
        # over its target is cut back within a few fills; while it stays over,
        # the device plays slower than the host's clock (SDL's disk driver: 1%
        # and more), and the sound is heard that much later than the target.
        super().audio_played(host_captured_ns, client_heard_ns, min(settling_ns, 0))
        self._fresh += 1

    def extra_delay_ns(self, current_extra_ns: int) -> int:
        if self._fresh < self._audio.maxlen:
            return current_extra_ns
        wanted = super().extra_delay_ns(current_extra_ns)
        if wanted != current_extra_ns:
            self._fresh = 0
        return wanted


class FillLog:
    """Per device fill of a playback: when its sound is heard and how old its
    capture stamps say it is then.  Tests and benchmarks that time the marks
    of the ``test`` sound use it to tell marks 100 ms apart from each other
    (the stamps only pick the mark; its latency comes from where it is heard).
    """

    def __init__(self):
        self.fills: list[tuple[int, int]] = []  # (heard ns, heard - captured stamp)

    def attach(self, playback) -> None:
        """Log every fill of ``playback`` from now on (wraps its lip-sync input)."""
        played = playback.sync.audio_played

        def logged(host_captured_ns: int, client_heard_ns: int, settling_ns: int = 0) -> None:
            self.fills.append((client_heard_ns, client_heard_ns - host_captured_ns))
            played(host_captured_ns, client_heard_ns, settling_ns)
        playback.sync.audio_played = logged

    def latency_ns(self, heard_ns: float) -> float:
        """The stamp-based latency of the fill heard at ``heard_ns``."""
        heard = np.fromiter((h for h, _ in self.fills), np.float64, len(self.fills))
        row = max(int(np.searchsorted(heard, heard_ns, side="right")) - 1, 0)
        return float(self.fills[row][1])


class ClientAudio(ClientService):
    """Play the host's sound here, in sync with the picture.

    ``playback_options`` go to ``open_audio_playback`` (e.g.
    ``device_samples``); ``stats`` is the client's StatsCollector (optional).
    """

    name = "audio"

    def __init__(self, *, stats=None, log: Callable[[str], None] = print,
                 backend: str = "sdl", playback_options: dict | None = None,
                 switch_interval_s: float | None = SWITCH_INTERVAL_S,
                 opener: Callable[..., object] = open_audio_playback,
                 tell_host: Callable[[], None] | None = None):
        if opener is open_audio_playback and backend == "sdl":
            # Imported now, on the caller's thread: importing pysdl2 holds the
            # GIL for about half a second, which on the thread that opens the
            # device would stall the receive thread just as sound starts, and
            # the jitter buffer would keep a deep target for that one stall.
            try:
                import sdl2  # noqa: F401
            except (ImportError, OSError):
                pass  # said when a session with sound starts (_open)
        self._stats = stats
        self._log = log
        self._backend = backend
        self._playback_options = dict(playback_options or {})
        self.switch_interval_s = switch_interval_s
        self._previous_switch: float | None = None
        self.opener = opener  # open_audio_playback, or a stand-in with its signature
        # Called on the receive thread (tick) once the device failed: the client
        # then says hello again without Capability.AUDIO, and the host stops
        # sending sound exactly as for --no-audio.
        self._tell_host = tell_host
        self._host_must_know = False
        self._lock = threading.Lock()  # opening and closing the device
        self._generation = 0  # bumped when a session ends: an open under way is moot
        self._opening: threading.Thread | None = None
        self.playback = None  # the SdlAudioPlayback of the running session
        # (payload, arrival ns) received while the device opens; None when no
        # open is under way.  Guarded by _lock.
        self._backlog: deque | None = None
        self.unavailable = ""
        self.counters: Counter[str] = Counter()
        self.guard = ThreadGuard()  # a bug opening the device ends the session (tick)
        self._reference_ns: int | None = None  # the latest AUDIO capture stamp
        self._next_stats_ns = 0
        # The A/V offset at every stats tick (2 a second).  Two minutes: with
        # RecentList's default (2048 to 4096 values) it took 34 minutes to
        # reach its bound, a slow fill a 10-minute soak read as growth.
        self.offsets_ns: list[int] = RecentList(keep=OFFSETS_KEPT)

    # -- hooks ----------------------------------------------------------------

    def session_started(self, session: SessionInfo, send: Sender) -> None:
        self._close_playback()
        self._reference_ns = None
        if not session.config.capabilities & Capability.AUDIO:
            return  # the host sends no sound (it has none, or runs with --audio none)
        if self.unavailable and self._tell_host is not None:
            return  # a reconnect: the host was told (our hello asks for no sound)
        # Opening SDL audio takes a quarter of a second or more: on the receive
        # thread it would hold back every datagram behind it, and the jitter
        # buffer would size itself for that one stall.  Sound arriving before
        # the device is open waits in the backlog instead (START_BACKLOG).
        with self._lock:
            generation = self._generation
            self._backlog = deque()
        self._opening = self.guard.thread("sound", partial(self._open, generation),
                                          name="audio-open")
        self._opening.start()

    def _open(self, generation: int) -> None:
        options = dict(self._playback_options)
        if "jitter" not in options:
            options["jitter"] = JitterBuffer(max_excess_ms=MAX_LATE_MS)
        if "sync" not in options:
            options["sync"] = PatientSync()
        try:
            try:
                playback = self.opener(self._backend, **options)
            except (ImportError, OSError) as exc:  # pysdl2, or the SDL2 library, missing
                raise AudioError("SDL2 could not be loaded", hint="pip install pysdl2 pysdl2-dll",
                                 details=[str(exc)]) from exc
        except AudioError as exc:
            reason = "; ".join([str(exc), *exc.details])
            if reason != self.unavailable:
                hint = f" ({exc.hint})" if exc.hint else ""
                told = "; the host is asked to send none" if self._tell_host else ""
                self._log(f"rootstream: sound off: {reason}{hint}{told}")
            self.unavailable = reason
            self._host_must_know = self._tell_host is not None
            with self._lock:
                if generation == self._generation:
                    self._drop_backlog()
            return
        with self._lock:
            if generation != self._generation:  # the session ended meanwhile
                playback.close()
                return
            # What came while the device opened, with the time it came: the
            # jitter buffer sizes its delay from arrival times.
            for parsed, arrived_ns in self._backlog or ():
                playback.push(parsed, arrived_ns)
            self._backlog = None
            self.playback = playback
            if self.switch_interval_s is not None and self._previous_switch is None:
                self._previous_switch = sys.getswitchinterval()
                sys.setswitchinterval(min(self._previous_switch, self.switch_interval_s))
        self.unavailable = ""
        driver = getattr(playback, "driver", "")
        self._log(f"rootstream: sound through {self._backend}"
                  + (f" ({driver})" if driver else ""))

    def handle(self, header: Header, payload: memoryview) -> bool:
        if header.ptype != PacketType.AUDIO:
            return False
        try:
            parsed = AudioPayload.parse(payload)
        except ProtocolError:
            self.counters["audio_dropped"] += 1
            return True
        playback = self.playback
        if playback is None:
            with self._lock:  # only until the device is open: no contention in a session
                playback = self.playback
                if playback is None:
                    self._keep_for_later(parsed)
                    return True
        self._reference_ns = parsed.captured_ns
        playback.push(parsed)
        return True

    def _keep_for_later(self, parsed: AudioPayload) -> None:
        """Queue sound that came before the device opened (caller holds _lock)."""
        backlog = self._backlog
        if backlog is None:  # no device and none opening: no session, or it failed
            self.counters["audio_dropped"] += 1
            return
        if len(backlog) >= START_BACKLOG:
            backlog.popleft()
            self.counters["audio_dropped"] += 1
        backlog.append((parsed, time.monotonic_ns()))
        self._reference_ns = parsed.captured_ns

    def frame_presented(self, frame, presented_ns: int) -> None:
        playback, reference = self.playback, self._reference_ns
        if playback is None or reference is None:
            return
        playback.video_presented(host_capture_ns(frame.capture_ms, reference), presented_ns)

    def tick(self, now_ns: int) -> None:
        self.guard.check()
        if self._host_must_know:
            self._host_must_know = False
            self._tell_host()
        if now_ns >= self._next_stats_ns:
            self._next_stats_ns = now_ns + STATS_EVERY_NS
            self._publish()

    def session_ended(self, reason: str) -> None:
        self._publish()
        self._close_playback()

    def close(self) -> None:
        self._close_playback()

    # -- helpers --------------------------------------------------------------

    @property
    def offset_ns(self) -> int | None:
        """Sound latency minus picture latency now; None until both are known."""
        playback = self.playback
        return None if playback is None else playback.sync.offset_ns

    def wait_open(self, timeout: float | None = None) -> bool:
        """Wait for the device being opened; True when sound is playing."""
        opening = self._opening
        if opening is not None:
            opening.join(timeout)
        return self.playback is not None

    def _drop_backlog(self) -> None:
        """Count what waited for a device that will not play it (caller holds _lock)."""
        self.counters["audio_dropped"] += len(self._backlog or ())
        self._backlog = None

    def _close_playback(self) -> None:
        with self._lock:
            self._generation += 1
            self._drop_backlog()
            playback, self.playback = self.playback, None
            if playback is not None:
                playback.close()
            if self._previous_switch is not None:
                sys.setswitchinterval(self._previous_switch)
                self._previous_switch = None

    def _publish(self) -> None:
        playback = self.playback
        if playback is not None:
            jitter = playback.jitter.stats
            self.counters["audio_frames"] = jitter.received
            self.counters["audio_recovered"] = jitter.recovered
            self.counters["audio_lost"] = jitter.lost
            self.counters["audio_underruns"] = jitter.underruns
            offset = playback.sync.offset_ns
            if offset is not None:
                self.offsets_ns.append(offset)
                self.counters["av_offset_ms"] = round(offset / 1e6)
        if self._stats is None:
            return
        for name in ("audio_frames", "audio_recovered", "audio_lost", "audio_underruns",
                     "audio_dropped", "av_offset_ms"):
            self._stats.set_total(name, self.counters[name])
