"""One phase's measurement, as a client service: pings, frames shown, CPU.

The meter rides along a normal client session.  It sends a ping every
``ping_interval_s`` (for the clock offset and the round trip; each pong also
carries the host's process CPU time), and for every picture the client shows
it reads the test pattern's marker from the decoded pixels and keeps the
frame's stamps.  ``figures()`` turns what it gathered into the phase's
numbers; the arithmetic lives in :func:`frame_split` so a test can check it
with made-up stamps.

Latency of one frame, all on the client's clock (offset = host - client):

    capture    = marker capture ms (host clock) - offset, + 0.5 ms because the
                 marker keeps whole milliseconds (the error is +-0.5 ms)
    latency    = presented - capture                       (glass to glass, minus the display)
    host       = host_us from the frame's sub-header        (capture -> encoded)
    network    = first datagram arrived - capture - host   (send, wire, socket)
    client     = presented - first datagram arrived        (reassemble, decode, present)

so host + network + client = latency for every frame.  The offset's error
bound moves ``latency`` and ``network`` by up to that much, never ``host`` or
``client``.  A host sharing its screen draws no marker: then the capture time
comes from the ROOT header (the host's capture stamp, the same clock), and the
figures say so (``latency_from``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from rootstream.benchrun.clock import OffsetEstimate, OffsetEstimator
from rootstream.machine import load_percent, process_cpu_ns
from rootstream.marker import read_marker_y
from rootstream.protocol import PacketType, Ping, Pong, encode_control
from rootstream.session import ClientService, Sender, SessionInfo

# A pong with its CPU field is 37 bytes; a ping padded to this many is never
# smaller than its answer, which the host requires of pings outside a session
# (docs/PROTOCOL.md §4) and costs nothing inside one.
PING_PAYLOAD = 48
DEFAULT_PING_INTERVAL_S = 0.1
MARKER_WRAP = 1 << 32
# Latencies outside this range come from a garbled or stale marker, not a frame.
PLAUSIBLE_MS = (-1_000.0, 10_000.0)
PERCENTILES = (50, 95, 99)


class Shown(NamedTuple):
    """One measured frame: what its pixels, its header and the client's stamps say."""

    number: int  # the pattern's frame number (marker)
    capture_ms: int  # host capture time from the marker (pixels)
    header_ms: int  # the same from the ROOT header
    host_us: int  # capture -> encoded, from the fragment sub-header
    first_ns: int  # first datagram arrived (our clock)
    presented_ns: int  # shown (our clock)
    frame_id: int
    size: int  # encoded bytes


def padded_ping(probe_id: int, t0_ns: int) -> bytes:
    payload = encode_control(Ping(probe_id & 0xFFFFFFFF, t0_ns))
    return payload + bytes(max(PING_PAYLOAD - len(payload), 0))


def percentiles_ms(values_ns) -> dict[str, float]:
    values = np.asarray(values_ns, dtype=np.float64)
    if values.size == 0:
        return {}
    points = np.percentile(values, PERCENTILES) / 1e6
    return {f"p{p}": round(float(v), 3) for p, v in zip(PERCENTILES, points, strict=True)}


def capture_on_our_clock(capture_ms: int, presented_ns: int, offset_ns: float) -> float:
    """The capture instant of a marker's wrapped host milliseconds, on our clock.

    The marker holds the low 32 bits of the host's milliseconds; the frame was
    shown shortly after, so the full value is the one nearest below the host's
    time at presentation.
    """
    presented_host_ms = int((presented_ns + offset_ns) // 1_000_000)
    age_ms = (presented_host_ms - capture_ms) % MARKER_WRAP
    if age_ms >= MARKER_WRAP // 2:
        age_ms -= MARKER_WRAP  # captured "after" it was shown: a clock problem, kept visible
    return (presented_host_ms - age_ms) * 1_000_000 + 500_000 - offset_ns


def frame_split(capture_ms: int, host_us: int, first_ns: int, presented_ns: int,
                offset_ns: float) -> tuple[float, float, float, float]:
    """(latency, host, network, client) of one frame in ns; see the module docstring."""
    captured = capture_on_our_clock(capture_ms, presented_ns, offset_ns)
    latency = presented_ns - captured
    host = host_us * 1000.0
    client = float(presented_ns - first_ns)
    return latency, host, latency - host - client, client


class PhaseMeter(ClientService):
    """Measures one client session; see the module docstring."""

    name = "bench"

    def __init__(self, *, ping_interval_s: float = DEFAULT_PING_INTERVAL_S,
                 warmup_s: float = 0.0, clock: Callable[[], int] = time.monotonic_ns,
                 cpu: Callable[[], int] = process_cpu_ns):
        self.ping_interval_ns = int(ping_interval_s * 1e9)
        self.warmup_ns = int(warmup_s * 1e9)
        self._clock = clock
        self._cpu = cpu
        self._lock = threading.Lock()
        self._send: Sender | None = None
        self.session: SessionInfo | None = None
        self.estimator = OffsetEstimator()
        self._outstanding: dict[int, int] = {}  # probe id -> t0
        self._next_probe = 1
        self._next_ping_ns = 0
        self.host_cpu: list[tuple[int, int]] = []  # (t1 on the host's clock, host CPU ns)
        self.client_cpu: list[tuple[int, int]] = []  # (our clock, our CPU ns)
        self.started_ns = 0
        self.ended_ns = 0
        self.end_reason = ""
        self.frames: list[Shown] = []  # after the warm-up, marker read
        # After the warm-up, no marker in the pixels: a host sharing its screen.
        # Their latency can only come from the capture time in the ROOT header.
        self.unmarked: list[Shown] = []
        self.unreadable = 0  # pictures whose marker could not be read
        self.shown = 0
        # The whole session's span of frame ids (sent) and marker numbers (captured).
        self.first_id: int | None = None
        self.last_id: int | None = None
        self.first_marker: int | None = None
        self.last_marker: int | None = None

    # -- the hooks ---------------------------------------------------------------------------

    def session_started(self, session: SessionInfo, send: Sender) -> None:
        self.session = session
        self._send = send
        now = self._clock()
        self.started_ns = now
        self.client_cpu.append((now, self._cpu()))
        self._ping(now)

    def tick(self, now_ns: int) -> None:
        if self._send is not None and now_ns >= self._next_ping_ns:
            self._ping(now_ns)

    def on_control(self, message: object) -> None:
        if isinstance(message, Pong):
            self.pong(message, self._clock())

    def session_ended(self, reason: str) -> None:
        now = self._clock()
        self._send = None
        self.ended_ns = now
        self.end_reason = reason
        self.client_cpu.append((now, self._cpu()))

    def picture_presented(self, picture, frame, presented_ns: int) -> None:
        self.picture_shown(picture, frame, presented_ns)

    def picture_shown(self, picture, frame, presented_ns: int) -> None:
        """A picture was shown: its pixels, its AssembledFrame, when (our clock).

        The latency comes from the pixels, so this is the picture_presented
        hook (ClientService), under the name the meter's tests know."""
        self.shown += 1
        if self.first_id is None:
            self.first_id = frame.frame_id
        self.last_id = frame.frame_id
        plane = picture.planes[0]
        y = np.frombuffer(plane, dtype=np.uint8).reshape(picture.height, plane.line_size)
        marker = read_marker_y(y, picture.width, picture.height)
        if marker is None:
            self.unreadable += 1
        else:
            if self.first_marker is None:
                self.first_marker = marker.frame_number
            self.last_marker = marker.frame_number
        if presented_ns - self.started_ns < self.warmup_ns:
            return  # counted above, but not the steady state the figures describe
        shown = Shown(-1, frame.capture_ms, frame.capture_ms, frame.host_us, frame.first_ns,
                      presented_ns, frame.frame_id, len(frame.data))
        if marker is None:
            self.unmarked.append(shown)
        else:
            self.frames.append(shown._replace(number=marker.frame_number,
                                              capture_ms=marker.capture_ms))

    # -- pings -------------------------------------------------------------------------------

    def _ping(self, now_ns: int) -> None:
        send = self._send
        if send is None:
            return
        with self._lock:
            probe = self._next_probe
            self._next_probe += 1
            self._next_ping_ns = now_ns + self.ping_interval_ns
            t0 = self._clock()
            self._outstanding[probe] = t0
            if len(self._outstanding) > 64:  # unanswered pings: forget the oldest
                self._outstanding.pop(next(iter(self._outstanding)))
        send(PacketType.CONTROL, padded_ping(probe, t0))

    def pong(self, pong: Pong, t3: int) -> None:
        with self._lock:
            t0 = self._outstanding.get(pong.probe_id)
            if t0 is None or t0 != pong.t0_ns:
                return  # not ours, late, duplicated, or forged (and then it cancels nothing)
            del self._outstanding[pong.probe_id]
        self.estimator.add(t0, pong.t1_ns, pong.t2_ns, t3)
        if pong.cpu_ns:
            self.host_cpu.append((pong.t1_ns, pong.cpu_ns))

    # -- the figures -------------------------------------------------------------------------

    def snapshot(self) -> dict:
        """A few live numbers for the progress line (any thread)."""
        estimate = self.estimator.estimate()
        latency = None
        measured = self.frames or self.unmarked
        if estimate is not None and measured:
            recent = measured[-60:]
            latency = float(np.median([_split(f, estimate)[0] for f in recent])) / 1e6
        rtts = self.estimator.rtts_ns()
        return {"shown": self.shown, "latency_ms": latency,
                "rtt_ms": float(np.median(rtts)) / 1e6 if rtts.size else None}

    def figures(self) -> dict:
        """Everything this meter can say about its phase (see report.py's schema)."""
        estimate = self.estimator.estimate()
        rtts = self.estimator.rtts_ns()
        end = self.ended_ns or self._clock()
        result = {
            "seconds": round((end - self.started_ns) / 1e9, 3) if self.started_ns else 0.0,
            "clock": clock_dict(estimate, self.estimator.rejected),
            "rtt_ms": rtt_dict(rtts),
            # The host's figure spans its first to last pong carrying CPU time.
            "cpu_pct": {"host": load_between(self.host_cpu),
                        "client": load_between(self.client_cpu)},
        }
        if self.session is None:
            return result
        # The pixels are the witness when they carry the marker; a screen's do
        # not, and then the host's own capture stamp (ROOT header) stands in.
        frames = self.frames or self.unmarked
        result["latency_from"] = "pixels" if self.frames else "header" if frames else None
        result["frames"] = {
            "shown": self.shown,
            "measured": len(frames),  # after the warm-up
            "markers_unreadable": self.unreadable,
            # Pixels and header must agree on the capture time: a frame whose
            # marker says otherwise is stale or garbled and was not counted.
            "markers_disagreeing": sum(1 for f in frames if f.capture_ms != f.header_ms),
            # Between the first and the last frame shown: what the host's capture
            # produced (pattern frame numbers) and what it sent (frame ids).
            "captured": _span(self.first_marker, self.last_marker),
            "sent": _span(self.first_id, self.last_id),
        }
        split = np.empty((0, 4))
        if estimate is not None and frames:
            split = np.array([_split(f, estimate) for f in frames
                              if f.capture_ms == f.header_ms]).reshape(-1, 4)
            latency_ms = split[:, 0] / 1e6
            plausible = (latency_ms > PLAUSIBLE_MS[0]) & (latency_ms < PLAUSIBLE_MS[1])
            result["frames"]["implausible"] = int((~plausible).sum())
            split = split[plausible]
        result["latency_ms"] = percentiles_ms(split[:, 0])
        result["stages_ms"] = {"host": percentiles_ms(split[:, 1]),
                               "network": percentiles_ms(split[:, 2]),
                               "client": percentiles_ms(split[:, 3])}
        if len(frames) > 1:
            span = (frames[-1].presented_ns - frames[0].presented_ns) / 1e9
            result["video_mbps"] = round(sum(f.size for f in frames[1:]) * 8 / span / 1e6, 3) \
                if span > 0 else None
        return result


def _split(shown: Shown, estimate: OffsetEstimate) -> tuple[float, float, float, float]:
    return frame_split(shown.capture_ms, shown.host_us, shown.first_ns, shown.presented_ns,
                       estimate.offset_ns)


def _span(first: int | None, last: int | None) -> int:
    return 0 if first is None else last - first + 1


def clock_dict(estimate: OffsetEstimate | None, rejected: int = 0) -> dict:
    if estimate is None:
        return {"offset_ms": None, "error_ms": None, "exchanges": 0, "rejected": rejected}
    return {"offset_ms": round(estimate.offset_ns / 1e6, 4),
            "error_ms": round(estimate.error_ns / 1e6, 4),
            "min_rtt_ms": round(estimate.min_rtt_ns / 1e6, 4),
            "exchanges": estimate.exchanges, "used": estimate.used, "rejected": rejected}


def rtt_dict(rtts_ns: np.ndarray) -> dict:
    if rtts_ns.size == 0:
        return {}
    return {**percentiles_ms(rtts_ns), "min": round(float(rtts_ns.min()) / 1e6, 3)}


def load_between(samples: list[tuple[int, int]]) -> float | None:
    """CPU % of one core between the first and last (clock ns, CPU ns) sample."""
    if len(samples) < 2:
        return None
    (t_first, c_first), (t_last, c_last) = samples[0], samples[-1]
    return load_percent(c_first, c_last, t_last - t_first)
