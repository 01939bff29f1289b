"""The client's figures: what each picture shown adds, what the host is told,
and the client's own report.

``account`` runs on the presenting thread for every picture shown (stage
latencies from the frame's stamps, freezes, the test pattern's marker);
``stats_message`` on the receive thread once a second (the StatsReport the
host's bitrate adaptation reads); ``live_figures`` on any thread (the stats
overlay); ``report`` at the report interval and at the end.
"""

from __future__ import annotations

import json
import time

import numpy as np

from rootstream.client.video import Decoded
from rootstream.marker import read_marker_y
from rootstream.protocol import PacketType, StatsReport
from rootstream.recent import RecentList
from rootstream.stats import format_report

CLIENT_STAGES = ("assemble", "decode", "present", "client", "host", "glass")
STATS_REPORT_S = 1.0


class ClientFigures:
    def __init__(self, client):
        # The client's parts this reads: options, stats, result, transport,
        # the receiver and decode stages, services, log, the JSON writer.
        self.client = client
        # Each picture's latency for the host's once-a-second report: the
        # last 1000 read, in an array (RecentList: no int kept per picture).
        self._present_ring = RecentList(keep=1000)
        path = client.options.frame_trace
        self.trace = FrameTrace(path) if path and client.options.same_clock else None

    def account(self, decoded: Decoded) -> None:
        client = self.client
        stamps = decoded.stamps
        stamps.presented = time.monotonic_ns()
        frame = decoded.frame
        result, stats = client.result, client.stats
        result.frames_presented += 1
        if result.present_ns:
            gap_ms = (stamps.presented - result.present_ns[-1]) / 1e6
            result.longest_freeze_ms = max(result.longest_freeze_ms, gap_ms)
        result.present_ns.append(stamps.presented)
        if result.first_picture_ns is None:
            result.first_picture_ns = stamps.presented
        stats.record("assemble", stamps.assembled - stamps.received)
        stats.record("decode", stamps.decoded - stamps.assembled)
        stats.record("present", stamps.presented - stamps.decoded)
        client_ns = stamps.presented - stamps.received
        stats.record("client", client_ns)
        stats.record("host", frame.host_us * 1000)
        self._present_ring.append(client_ns)
        for service in client.services:
            service.frame_presented(frame, stamps.presented)
            service.picture_presented(decoded.picture, frame, stamps.presented)
        if client.options.read_markers:
            marker = _read_marker(decoded.picture)
            if marker is not None:
                result.markers.append(marker.frame_number)
                if client.options.same_clock:
                    now_ms = stamps.presented // 1_000_000
                    age = (now_ms - marker.capture_ms) & 0xFFFFFFFF
                    if age < 10_000:
                        stats.record("glass", age * 1_000_000)
                    if self.trace is not None:
                        self.trace.shown(marker, frame, stamps)

    def live_figures(self) -> dict:
        """Cumulative figures for the stats overlay; any thread, resets nothing."""
        client = self.client
        rings = client.stats.window.rings
        return {"frames_presented": client.result.frames_presented,
                "received_bytes": client.transport.counters.received_bytes,
                "bitrate_kbps": client.result.bitrate_kbps,
                "latency_ms": {stage: rings[stage].percentiles_ms((50, 99))
                               for stage in CLIENT_STAGES if stage in rings},
                "drops": {"frames lost": client.receiver.session_stats.frames_lost,
                          "datagrams lost": client.transport.counters.lost.get(
                              PacketType.VIDEO, 0),
                          "pictures dropped": client.video.pictures.dropped},
                "control": client.handoff.overlay_lines()}

    def stats_message(self) -> StatsReport:
        client = self.client
        ring = np.array(self._present_ring[-1000:] or [0], dtype=np.int64)
        p50, p99 = np.percentile(ring, [50, 99]) / 1000
        r = client.receiver.session_stats
        counters = client.transport.counters
        lost = counters.lost.get(PacketType.VIDEO, 0)
        path = client.receiver.sample(time.monotonic_ns(), counters.received_bytes)
        return StatsReport(
            interval_ms=int(STATS_REPORT_S * 1000),
            frames_received=client.result.frames_received & 0xFFFFFFFF,
            frames_presented=client.result.frames_presented & 0xFFFFFFFF,
            frames_lost=r.frames_lost & 0xFFFFFFFF,
            frames_recovered=r.frames_recovered & 0xFFFFFFFF,
            datagrams_received=counters.received & 0xFFFFFFFF,
            datagrams_lost=lost & 0xFFFFFFFF,
            receive_kbps=min(path.receive_kbps, 0xFFFFFFFF),
            client_p50_us=int(p50), client_p99_us=int(p99),
            queue_delay_us=min(path.queue_delay_us, 0xFFFFFFFF),
            delay_trend_us=max(-(1 << 31), min(path.delay_trend_us, (1 << 31) - 1)))

    def report(self) -> None:
        client = self.client
        receiver, stats, counters = client.receiver, client.stats, client.transport.counters
        stats.set_total("frames_lost", receiver.frames_lost)
        stats.set_total("dropped_pictures", client.video.pictures.dropped)
        stats.set_total("frames_recovered", receiver.frames_recovered)
        if receiver.total("repair_requests"):
            stats.set_total("repair_requests", receiver.total("repair_requests"))
            stats.set_total("frames_repaired", receiver.total("frames_repaired"))
            stats.set_total("repairs_failed", receiver.total("repairs_failed"))
        stats.set_total("datagrams_lost", counters.lost.get(PacketType.VIDEO, 0))
        stats.set_total("malformed", counters.malformed + receiver.session_stats.malformed)
        client.result.frames_lost = receiver.frames_lost
        report = stats.report()
        client.log(format_report(report))
        if client.json is not None:
            client.json.write(report)


class FrameTrace:
    """The first picture of each new marker, every stamp on its way, one JSON line each.

    Host and client share the machine's monotonic clock (``--same-clock``),
    so the painter's stamp in the marker (ms), the host's capture (ms, from
    the ROOT header), capture -> encoded (µs, from the fragment header) and
    the client's own stamps (ns) line up: bench/bench_glass.py joins them
    with the observer's figure for the same marker to see where a slow
    change spent its time.
    """

    def __init__(self, path: str):
        self._file = open(path, "a", buffering=1)  # noqa: SIM115 - closed by close()
        self._last = None

    def shown(self, marker, frame, stamps) -> None:
        if marker.frame_number == self._last:
            return
        self._last = marker.frame_number
        self._file.write(json.dumps({
            "marker": marker.frame_number, "painted_ms": marker.capture_ms,
            "frame_id": frame.frame_id, "captured_ms": frame.capture_ms,
            "host_us": frame.host_us, "received_ns": stamps.received,
            "assembled_ns": stamps.assembled, "decoded_ns": stamps.decoded,
            "presented_ns": stamps.presented}) + "\n")

    def close(self) -> None:
        self._file.close()


def _read_marker(picture):
    plane = picture.planes[0]
    y = np.frombuffer(plane, dtype=np.uint8).reshape(picture.height, plane.line_size)
    return read_marker_y(y, picture.width, picture.height)
