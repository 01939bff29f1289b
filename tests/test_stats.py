"""Latency rings, the periodic report and its one-line form."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from rootstream.client import Client, ClientOptions
from rootstream.host import Host, HostOptions
from rootstream.stats import JsonStatsWriter, LatencyRing, StatsCollector, format_report


def test_ring_percentiles_are_in_milliseconds_over_the_last_samples_only():
    ring = LatencyRing(size=100)
    for ms in range(1, 101):
        ring.add(ms * 1_000_000)
    assert ring.percentiles_ms((50, 99)) == {"p50": pytest.approx(50.5),
                                             "p99": pytest.approx(99.01)}
    for _ in range(100):  # a full turn of the ring: the old samples are gone
        ring.add(7_000_000)
    assert len(ring) == 100 and ring.total == 200
    assert ring.percentiles_ms() == {"p50": 7.0, "p95": 7.0, "p99": 7.0}


@pytest.mark.parametrize("count", [1, 2, 3, 10, 999, 1024, 2500])
def test_ring_percentiles_follow_numpys_linear_rule(count):
    rng = np.random.default_rng(count)
    samples = rng.integers(0, 50_000_000, count)
    ring = LatencyRing()
    for ns in samples:
        ring.add(int(ns))
    kept = samples[-1024:]
    want = {f"p{p}": round(float(np.percentile(kept, p)) / 1e6, 3) for p in (50, 90, 95, 99)}
    assert ring.percentiles_ms((50, 90, 95, 99)) == want


def test_an_empty_ring_has_no_percentiles():
    assert LatencyRing().percentiles_ms() == {}


def test_report_resets_the_interval_but_keeps_the_rings():
    stats = StatsCollector("host", ("encode",))
    stats.record("encode", 4_000_000)
    stats.frame(1000)
    stats.count("idr_requests")
    first = stats.report(now_ns=stats.window.window_start_ns + 1_000_000_000)
    assert (first["fps"], first["mbps"], first["counters"]) == (1.0, 0.008, {"idr_requests": 1})
    assert first["latency_ms"]["encode"]["p50"] == 4.0
    second = stats.report()
    assert (second["fps"], second["counters"]) == (0.0, {})
    assert second["totals"] == {"idr_requests": 1}
    assert second["latency_ms"]["encode"]["p50"] == 4.0


def test_a_new_session_starts_with_empty_rings_and_running_totals():
    stats = StatsCollector("host", ("encode", "send"))
    stats.record("encode", 30_000_000)  # the last client's slow frames
    stats.count("refused_busy")
    stats.new_session()
    stats.record("send", 1_000_000)
    report = stats.report()
    assert "encode" not in report["latency_ms"]
    assert report["latency_ms"]["send"]["p50"] == 1.0
    assert report["totals"] == {"refused_busy": 1}


def test_the_one_line_form_names_rate_drops_and_stages(tmp_path):
    stats = StatsCollector("client", ("decode",))
    stats.record("decode", 2_500_000)
    stats.count("frames_lost", 2)
    report = stats.report(now_ns=stats.window.window_start_ns + 2_000_000_000)
    line = format_report(report)
    assert line.startswith("client:   0.0 fps   0.00 Mbit/s | frames_lost=2 | decode 2.5/2.5/2.5")
    path = tmp_path / "stats.jsonl"
    writer = JsonStatsWriter(str(path))
    writer.write(report)
    writer.write(report)
    writer.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["latency_ms"]["decode"]["p50"] == 2.5


def test_a_second_client_sees_only_its_own_figures(udp_port):
    host = Host(HostOptions(source="test", size=(640, 360), fps=30, bind="127.0.0.1",
                            port=udp_port, max_sessions=2, stats_interval=60),
                log=lambda line: None)
    serving = threading.Thread(target=host.serve)
    serving.start()
    try:
        def visit(seconds: float) -> int:
            client = Client(ClientOptions(host=("127.0.0.1", udp_port), present="null",
                                          seconds=seconds, stats_interval=60),
                            log=lambda line: None)
            assert client.run().frames_presented > 0
            return host.stats.window.rings["host"].total

        first = visit(2.0)  # about 60 frames
        second = visit(0.7)  # about 20
    finally:
        serving.join(10)
        host.close()
    assert 0 < second < first
