"""The client's adaptive audio jitter buffer.

A plain synchronous object: no socket, no thread, no clock of its own.
``push(payload, now_ns)`` files an arriving AUDIO payload; ``read(samples,
now_ns)`` returns exactly that much PCM for the sound device, decoding in
stream order and concealing whatever is missing.  Tests drive it datagram by
datagram with an invented clock.

How much it buffers is a delay, not a packet count.  For every arriving
frame it notes ``transit = arrival - captured_ns`` (client clock minus host
clock: the unknown offset between them is the same for every packet, so it
cancels in every comparison below).  Playing a sample ``D`` after its capture
is safe when ``D`` exceeds the transit of nearly every packet plus the span of
one device read, so the target is

    target = floor(transit) + spread(transit) + read span + margin + extra

over the last few seconds, where the clock-drift trend is fitted out of the
transits first, floor is their minimum and spread the 99th percentile minus
the minimum.  On a link that lost a packet lately one frame is added, so the
next datagram's redundant copy arrives before the lost frame is due.  The
target rises the moment jitter does and falls at ``shrink_ms_per_s``, slower
than the playout ratio can follow, once the network calms down.  ``extra``
is what lip sync asks for (sync.py).  Each read measures the actual delay of
the sample it plays, and the difference to the target steers the playout
ratio (stretch.py, a PI loop) by at most ``max_ratio_deviation``; whole
frames of silence are dropped or inserted when the error exceeds a frame,
where nobody can hear it.  In sound, a frame of libopus concealment is
slipped between two decoded frames (at most ten a second) when the delay is
a frame short, and sound is cut with a 2 ms crossfade only when the delay
runs more than ``max_excess_ms`` over target.  Clock drift between
host and client shows up as a slowly growing error and is absorbed by the
ratio.

Losses: a missing frame whose successors are here is concealed by libopus
(after checking whether a later payload carried it as its redundant copy);
when nothing at all is buffered (an underrun) the buffer conceals without
moving on, re-buffers to the target, and resumes with the frame it was
waiting for.  A gap longer than ``max_conceal_ms`` makes it skip ahead.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from rootstream.audio.chunk import CHANNELS, RATE
from rootstream.audio.opus import OpusDecoder
from rootstream.audio.stretch import StretchFifo
from rootstream.protocol.audio import AudioPayload
from rootstream.protocol.seqnum import seq32_diff

MAX_DRIFT = 0.005  # sound clocks more than 0.5% apart are broken, not drifting
SILENCE_PEAK = 64.0  # about -54 dBFS: below this a dropped or added frame is inaudible
MAX_STAMP = 1 << 62
EXPAND_INTERVAL_NS = 100_000_000
REFIT_NS = 100_000_000
MIN_CONCEAL = 120  # the shortest Opus frame
CUT_FADE = 96  # 2 ms crossfade where sound has to be cut
CUT_SEARCH = 240  # ±5 ms of freedom in the cut length to find a matching phase


@dataclass(slots=True)
class JitterStats:
    received: int = 0  # primary frames accepted
    recovered: int = 0  # frames filed from a redundant copy before their primary came
    duplicates: int = 0
    late: int = 0  # arrived after their slot was played or concealed
    rejected: int = 0  # wrong channel count, or absurdly far from the stream
    decoded: int = 0
    lost: int = 0  # frames concealed because they never came
    underruns: int = 0  # times the buffer ran dry
    resyncs: int = 0  # jumps over a gap too long to conceal
    concealed_samples: int = 0
    dropped_samples: int = 0  # silence removed to cut delay
    inserted_samples: int = 0  # silence added to raise delay
    expanded_samples: int = 0  # concealment inserted to raise delay in sound
    cut_samples: int = 0  # sound cut (crossfaded) because the delay ran far over target


@dataclass(slots=True)
class _Frame:
    samples: int
    data: bytes
    captured_ns: int


class JitterBuffer:
    def __init__(self, decoder: OpusDecoder | None = None, *, rate: int = RATE,
                 channels: int = CHANNELS, margin_ms: float = 2.0, min_spread_ms: float = 1.0,
                 max_delay_ms: float = 300.0, window_ms: float = 3000.0,
                 shrink_ms_per_s: float = 3.0, max_conceal_ms: float = 80.0,
                 max_ratio_deviation: float = 0.005, ratio_time_constant_s: float = 1.0,
                 max_excess_ms: float = 60.0,
                 max_frames: int = 400):
        self.decoder = decoder or OpusDecoder(channels=channels)
        self.rate, self.channels = rate, channels
        self.margin_ns = int(margin_ms * 1e6)
        self.min_spread_ns = int(min_spread_ms * 1e6)
        self.max_delay_ns = int(max_delay_ms * 1e6)
        self.window_ns = int(window_ms * 1e6)
        self.shrink_per_ns = shrink_ms_per_s / 1000.0
        self.max_conceal = int(max_conceal_ms * rate / 1000)
        self.max_ratio_deviation = max_ratio_deviation
        self.max_excess_ns = int(max_excess_ms * 1e6)
        self.ratio_time_constant_s = ratio_time_constant_s
        self.max_frames = max_frames
        self.extra_delay_ns = 0
        self.stats = JitterStats()
        self.ratio = 1.0
        # Measured at the last read: now minus the capture stamp of its first sample.
        self.delay_ns: int | None = None
        self.target_delay_ns: int | None = None  # what delay_ns is steered toward
        self.last_read_captured_ns: int | None = None
        self._frames: dict[int, _Frame] = {}
        self._ref: tuple[int, int] | None = None  # (wrapped, unwrapped) position anchor
        self._cursor: int | None = None  # unwrapped position of the next frame to decode
        self._playing = False
        self._fifo = StretchFifo(channels, rate)
        self._transits: deque[tuple[int, int]] = deque()
        self._target_ns: float | None = None
        self._target_at = 0
        self._read_span_ns = 0
        self._last_frame_samples = 480
        self._next_stamp = 0  # capture stamp concealment continues from
        self._conceal_run = 0
        self._integral = 0.0
        self._steer_at: int | None = None
        self._losses: deque[int] = deque()  # when recent losses were noticed
        self._transit_stats: tuple[float, float, int] | None = None
        self._fitted_at = 0
        self._expand_pending = False
        self._expanded_at = -EXPAND_INTERVAL_NS

    # -- arrivals -----------------------------------------------------------------

    def push(self, payload: AudioPayload, now_ns: int) -> None:
        """File one arriving payload (and its redundant copy of the previous frame)."""
        if payload.channels != self.channels:
            self.stats.rejected += 1
            return
        position = self._unwrap(payload.position)
        if self._cursor is not None and abs(position - self._cursor) > 4 * self.rate:
            # Seconds away from where we play: the host restarted its stream.
            self._restart()
            position = self._unwrap(payload.position)
        # A u64 from the wire: keep it where int64 stamp arithmetic cannot overflow.
        captured_ns = min(payload.captured_ns, MAX_STAMP)
        self._note_transit(now_ns - captured_ns, now_ns)
        primary = _Frame(payload.samples, payload.primary, captured_ns)
        if self._file(position, primary, redundant=False):
            self.stats.received += 1
        if payload.redundant:
            previous = position - payload.redundant_samples
            stamp = captured_ns - payload.redundant_samples * 1_000_000_000 // self.rate
            frame = _Frame(payload.redundant_samples, payload.redundant, stamp)
            if self._file(previous, frame, redundant=True):
                self.stats.recovered += 1
                self._losses.append(now_ns)

    def _file(self, position: int, frame: _Frame, *, redundant: bool) -> bool:
        if self._cursor is not None and position < self._cursor:
            if not redundant:
                self.stats.late += 1
            return False
        if position in self._frames:
            if not redundant:
                self.stats.duplicates += 1
            return False
        if len(self._frames) >= self.max_frames:
            self.stats.rejected += 1
            return False
        self._frames[position] = frame
        return True

    def _unwrap(self, wrapped: int) -> int:
        if self._ref is None:
            self._ref = (wrapped, wrapped)
            return wrapped
        ref_wrapped, ref = self._ref
        position = ref + seq32_diff(wrapped, ref_wrapped)
        if position > ref:
            self._ref = (wrapped, position)
        return position

    def _restart(self) -> None:
        self.stats.resyncs += 1
        self._frames.clear()
        self._ref = None
        self._cursor = None
        self._playing = False
        self._fifo = StretchFifo(self.channels, self.rate)  # the old stream's tail is moot

    def _note_transit(self, transit: int, now_ns: int) -> None:
        self._transits.append((now_ns, transit))
        stats = self._transit_stats
        if stats is not None:
            # Refit at once when a transit falls outside the band the last fit
            # described (jitter must raise the target now), else every 100 ms:
            # the fit costs more than the decode it accompanies.
            floor_at, slope, spread = stats
            expected = floor_at + slope * (now_ns - self._fitted_at)
            if not expected <= transit <= expected + spread or \
                    now_ns - self._fitted_at >= REFIT_NS:
                self._transit_stats = None
        horizon = now_ns - self.window_ns
        while self._transits[0][0] < horizon:
            self._transits.popleft()

    def _fit_transits(self) -> tuple[float, float, int]:
        """(floor at the newest arrival, drift slope, spread) of recent transits.

        Clock drift tilts transits by up to a millisecond per second; a plain
        minimum over the window would lag that tilt by the window's length,
        so the trend is fitted and removed first, then floor and spread are
        taken from what is left.
        """
        times = np.fromiter((t for t, _ in self._transits), np.float64, len(self._transits))
        transits = np.fromiter((d for _, d in self._transits), np.float64, len(self._transits))
        times -= times[-1]
        slope = 0.0
        if times.size >= 16 and times[0] < -0.5e9:
            slope = float(np.polyfit(times, transits, 1)[0])
            slope = min(max(slope, -MAX_DRIFT), MAX_DRIFT)
        residual = transits - slope * times
        floor = float(residual.min())
        k = (residual.size * 99) // 100  # the 99th percentile, without sorting it all
        spread = max(int(np.partition(residual, k)[k] - floor), self.min_spread_ns)
        return floor, slope, spread

    # -- delay target ---------------------------------------------------------------

    def _update_target(self, now_ns: int) -> int | None:
        """The delay from capture to read this buffer aims at; None before any packet."""
        if not self._transits:
            return None
        if self._transit_stats is None:
            self._transit_stats = self._fit_transits()
            self._fitted_at = self._transits[-1][0]
        floor_at, slope, spread = self._transit_stats
        floor = int(floor_at + slope * (now_ns - self._fitted_at))
        while self._losses and self._losses[0] < now_ns - self.window_ns:
            self._losses.popleft()
        # On a lossy link wait one frame more, so the next datagram's redundant
        # copy of a lost frame arrives before that frame is due.
        redundancy = self._last_frame_samples * 1_000_000_000 // self.rate if self._losses else 0
        wanted = spread + self._read_span_ns + self.margin_ns + redundancy
        # Grow at once, shrink gently: the spread is relative to the floor, which
        # moves with clock drift and must be followed at full speed.
        if self._target_ns is None or wanted >= self._target_ns:
            self._target_ns = wanted
        else:
            elapsed = max(now_ns - self._target_at, 0)
            self._target_ns = max(wanted, self._target_ns - elapsed * self.shrink_per_ns)
        self._target_at = now_ns
        total = floor + int(self._target_ns) + self.extra_delay_ns
        self.target_delay_ns = min(total, floor + self.max_delay_ns)
        return self.target_delay_ns

    def set_extra_delay(self, extra_ns: int) -> None:
        """Delay added on top of what the network needs (lip sync); never negative."""
        self.extra_delay_ns = max(0, int(extra_ns))

    # -- playout ----------------------------------------------------------------------

    def read(self, samples: int, now_ns: int) -> np.ndarray:
        """Exactly ``samples`` of int16 PCM, shape (samples, channels), for playing now."""
        self._read_span_ns = max(self._read_span_ns, samples * 1_000_000_000 // self.rate)
        target = self._update_target(now_ns)
        if self._cursor is None and not self._start(now_ns, target):
            self.last_read_captured_ns = None
            self.delay_ns = None
            return np.zeros((samples, self.channels), np.int16)
        self._adjust_silence(now_ns, target)
        while self._fifo.needed(samples, self.ratio) > self._fifo.readable:
            self._decode_next(now_ns, target)
        out, stamp = self._fifo.read(samples, self.ratio)
        self.last_read_captured_ns = stamp
        self.delay_ns = now_ns - stamp
        self._steer(target, now_ns)
        return np.clip(np.rint(out), -32768, 32767).astype(np.int16)

    def _start(self, now_ns: int, target: int | None) -> bool:
        if not self._frames or target is None:
            return False
        first = min(self._frames)
        playout = now_ns + self._fifo.readable * 1_000_000_000 // self.rate
        if playout - self._frames[first].captured_ns < target:
            return False
        self._cursor = first
        self._playing = True
        return True

    def _steer(self, target: int | None, now_ns: int) -> None:
        """PI control of the playout ratio from the delay error.

        Proportional alone would leave a standing error of drift * time
        constant (2 ms at 0.1% drift), eating the margin; the integral learns
        the drift instead.  ``Ti = 4 tau^2`` makes the loop critically damped.
        """
        if target is None or self.delay_ns is None or not self._playing:
            self.ratio = 1.0
            self._steer_at = None
            return
        limit = self.max_ratio_deviation
        error_s = (self.delay_ns - target) / 1e9
        proportional = error_s / self.ratio_time_constant_s
        if self._steer_at is not None and abs(proportional + self._integral) < limit:
            # Integrate only while the output is not saturated (no wind-up
            # after a stall, which would overshoot once the error is gone).
            dt = min((now_ns - self._steer_at) / 1e9, 0.1)
            tau = self.ratio_time_constant_s
            self._integral += error_s * dt / (4 * tau * tau)
            self._integral = min(max(self._integral, -MAX_DRIFT), MAX_DRIFT)
        self._steer_at = now_ns
        deviation = proportional + self._integral
        self.ratio = 1.0 + min(max(deviation, -limit), limit)

    def _adjust_silence(self, now_ns: int, target: int | None) -> None:
        """Cut or pad a whole frame of silence when the delay is a frame off target."""
        if target is None or self.delay_ns is None or not self._playing:
            return
        frame = self._last_frame_samples
        frame_ns = frame * 1_000_000_000 // self.rate
        error = self.delay_ns - target
        if abs(error) < frame_ns:
            return
        while self._fifo.readable < frame + CUT_SEARCH + CUT_FADE + 3:
            if not self._decode_next(now_ns, target):
                return
        if self._fifo.peak(frame) >= SILENCE_PEAK:
            if error < 0 and now_ns - self._expanded_at >= EXPAND_INTERVAL_NS:
                # Far too early (lip sync asked for more delay): stretch the
                # sound by one concealed frame between two decoded ones, as
                # libopus does for a lost packet, rather than bend the pitch
                # for seconds.  At most one every EXPAND_INTERVAL_NS.
                self._expand_pending = True
                self._expanded_at = now_ns
            elif error > self.max_excess_ns:
                # Far too late (a device clock far off, a stall that queued a
                # lot): cut about a frame, in phase, rather than stay late.
                removed = self._fifo.cut(frame, CUT_FADE, CUT_SEARCH)
                self.stats.cut_samples += removed
                self.delay_ns -= removed * 1_000_000_000 // self.rate
            return
        if error > 0:
            self._fifo.skip(frame)
            self.stats.dropped_samples += frame
            self.delay_ns -= frame_ns
        else:
            self._fifo.insert_silence(frame)
            self.stats.inserted_samples += frame
            self.delay_ns += frame_ns

    def _decode_next(self, now_ns: int, target: int | None) -> bool:
        """Append the next frame's PCM (real, recovered or concealed) to the FIFO.

        Returns False when it could only conceal (nothing real was buffered).
        """
        cursor = self._cursor
        if not self._playing:
            stamp = self._cursor_stamp()
            playout = now_ns + self._fifo.readable * 1_000_000_000 // self.rate
            if stamp is not None and target is not None and playout - stamp >= target:
                self._playing = True
            else:
                self._conceal(self._last_frame_samples)
                return False
        if self._expand_pending:
            self._expand_pending = False
            self.stats.expanded_samples += self._last_frame_samples
            self._conceal(self._last_frame_samples, counted=False)
            return True
        frame = self._frames.pop(cursor, None)
        if frame is not None:
            pcm = self.decoder.decode(frame.data, frame.samples)
            self.stats.decoded += 1
            self._append(pcm, frame.captured_ns)
            self._cursor = cursor + frame.samples
            self._last_frame_samples = frame.samples
            self._conceal_run = 0
            return True
        if not self._frames:
            self.stats.underruns += 1
            self._playing = False
            self._conceal(self._last_frame_samples)
            return False
        first = min(self._frames)
        gap = first - cursor
        if gap > self.max_conceal:
            self.stats.resyncs += 1
            self._cursor = first
            self._playing = False
            self._conceal(self._last_frame_samples)
            return False
        if gap < MIN_CONCEAL:
            # Frames that do not tile (only a broken or hostile sender makes
            # them): step onto the next frame rather than conceal slivers.
            self._cursor = first
            return True
        samples = min(gap, self._last_frame_samples)
        self.stats.lost += 1
        self._losses.append(now_ns)
        self._conceal(samples)
        self._cursor = cursor + samples
        return True

    def _cursor_stamp(self) -> int | None:
        """Capture time of the frame at the cursor, extrapolated when it is missing."""
        if not self._frames or self._cursor is None:
            return None
        frame = self._frames.get(self._cursor)
        if frame is not None:
            return frame.captured_ns
        first = min(self._frames)
        ahead = (first - self._cursor) * 1_000_000_000 // self.rate
        return self._frames[first].captured_ns - ahead

    def _append(self, pcm: np.ndarray, captured_ns: int) -> None:
        count = pcm.shape[0]
        stamps = captured_ns + np.arange(count, dtype=np.int64) * 1_000_000_000 // self.rate
        self._fifo.append(pcm, stamps)
        self._next_stamp = captured_ns + count * 1_000_000_000 // self.rate

    def _conceal(self, samples: int, *, counted: bool = True) -> None:
        if self._conceal_run < self.max_conceal:
            pcm = self.decoder.conceal(samples)
        else:
            pcm = np.zeros((samples, self.channels), np.int16)  # PLC has faded out by now
        self._conceal_run += samples
        if counted:
            self.stats.concealed_samples += samples
        self._append(pcm, self._next_stamp)

    @property
    def buffered_frames(self) -> int:
        return len(self._frames)
