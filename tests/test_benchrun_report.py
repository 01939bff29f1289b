"""The bench's arithmetic and outputs without a network: plan, per-frame split,
CPU and machine parsing, the meter's ping bookkeeping, the table and --compare."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from rootstream.benchrun.meter import (
    PING_PAYLOAD,
    PhaseMeter,
    capture_on_our_clock,
    frame_split,
    padded_ping,
)
from rootstream.benchrun.plan import PlanError, default_plan, parse_phase
from rootstream.benchrun.report import (
    SCHEMA_VERSION,
    ReportError,
    build_report,
    format_progress,
    format_table,
    load_report,
    ratio,
    write_report,
)
from rootstream.benchrun.run import BenchRun, Progress
from rootstream.machine import (
    Machine,
    cpu_model,
    describe_machine,
    load_percent,
    parse_stat_cpu_ns,
    process_cpu_ns,
)
from rootstream.marker import draw_marker
from rootstream.protocol import AssembledFrame, Ping, Pong, decode_control, encode_control
from rootstream.session import SessionInfo

# -- plan ---------------------------------------------------------------------------------


def test_the_default_plan_is_idle_then_720p60_and_1080p60_at_two_bitrates():
    plan = default_plan(phase_seconds=2, idle_seconds=1)
    assert [p.name for p in plan] == ["idle", "720p60 5M", "720p60 10M", "1080p60 10M",
                                      "1080p60 20M"]
    assert plan[0].idle and plan[0].seconds == 1
    assert all(p.seconds == 2 and p.fps == 60 for p in plan[1:])
    assert [p.name for p in default_plan(2, idle_seconds=0)][0] == "720p60 5M"


def test_a_phase_from_the_command_line():
    phase = parse_phase("1920x1080@60:20", 3)
    assert (phase.width, phase.height, phase.fps, phase.bitrate_kbps) == (1920, 1080, 60, 20_000)
    assert parse_phase(" idle ", 1.5).idle
    for bad in ("1920x1080", "1920x1080@60", "1921x1080@60:20", "640x360@0:2", "640x360@30:900",
                "big"):
        with pytest.raises(PlanError):
            parse_phase(bad, 1)


# -- one frame's arithmetic ---------------------------------------------------------------


def test_the_split_adds_up_and_the_offset_moves_only_latency_and_network():
    offset = 7_000_000_000  # the host's clock is 7 s ahead
    captured_host_ns = 123_456_789_400_000  # .4 ms into a millisecond
    capture_ms = (captured_host_ns // 1_000_000) & 0xFFFFFFFF
    first_ns = captured_host_ns - offset + 9_000_000  # host 3 ms + network 6 ms
    presented = first_ns + 4_000_000  # client 4 ms
    latency, host, network, client = frame_split(capture_ms, 3000, first_ns, presented, offset)
    assert host == 3_000_000 and client == 4_000_000
    assert latency == host + network + client
    # The marker keeps whole milliseconds: the estimate is centred, off by <= 0.5 ms.
    assert abs(latency - 13_000_000) <= 500_000
    assert abs(network - 6_000_000) <= 500_000
    shifted = frame_split(capture_ms, 3000, first_ns, presented, offset + 2_000_000)
    assert shifted[1:4:2] == (host, client)
    assert shifted[0] == pytest.approx(latency + 2_000_000)  # captured earlier on our clock


def test_the_marker_milliseconds_wrap_around_32_bits():
    offset = 0
    presented = (1 << 32) * 1_000_000 + 5_000_000  # 5 ms past a wrap of the host's ms
    capture_ms = (1 << 32) - 10  # 15 ms earlier, before the wrap
    captured = capture_on_our_clock(capture_ms, presented, offset)
    assert presented - captured == pytest.approx(14_500_000)


# -- CPU and machine ----------------------------------------------------------------------


def test_proc_stat_with_a_nasty_command_name():
    line = (b"4242 (evil) name (x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 "
            b"3 0 100 1000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0")
    import os

    tick = os.sysconf("SC_CLK_TCK")
    assert parse_stat_cpu_ns(line) == 300 * 1_000_000_000 // tick
    assert process_cpu_ns() > 0
    assert process_cpu_ns("/nonexistent/stat") > 0  # the C library's clock instead


def test_load_is_a_percentage_of_one_core():
    assert load_percent(0, 500_000_000, 1_000_000_000) == 50.0
    assert load_percent(0, 3_000_000_000, 1_000_000_000) == 300.0
    assert load_percent(10, 5, 1_000) == 0.0  # never negative
    assert load_percent(0, 1, 0) is None


def test_cpu_model_from_x86_and_arm_cpuinfo(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel\t\t: 1\n"
                   "model name\t: AMD Ryzen 7 5800X 8-Core Processor\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 108.00\n\nHardware\t: BCM2835\n"
                   "Model\t\t: Raspberry Pi 4 Model B Rev 1.4\n")
    assert cpu_model(str(x86)) == "AMD Ryzen 7 5800X 8-Core Processor"
    assert cpu_model(str(arm)) == "BCM2835"
    assert cpu_model(str(tmp_path / "missing"))  # never empty
    here = describe_machine()
    assert here.cpus >= 1 and "Python" in here.software and "rootstream" in here.software
    assert Machine.from_dict(here.as_dict()) == here


# -- the meter's pings --------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 1_000_000_000

    def __call__(self):
        return self.now


def test_the_meter_pings_on_schedule_and_keeps_only_its_own_answers():
    clock = FakeClock()
    sent = []
    meter = PhaseMeter(ping_interval_s=0.1, clock=clock, cpu=lambda: clock.now // 10)
    meter.session_started(None, lambda ptype, payload: sent.append(payload))
    assert len(sent) == 1 and len(sent[0]) == PING_PAYLOAD
    ping = decode_control(sent[0])  # the padding is trailing bytes a parser ignores
    assert isinstance(ping, Ping) and ping.t0_ns == clock.now
    clock.now += 50_000_000
    meter.tick(clock.now)
    assert len(sent) == 1  # not due yet
    clock.now += 50_000_000
    meter.tick(clock.now)
    assert len(sent) == 2
    second = decode_control(sent[1])
    host_offset = 2_000_000_000
    meter.on_control(Pong(ping.probe_id, ping.t0_ns, ping.t0_ns + host_offset + 100_000,
                          ping.t0_ns + host_offset + 150_000, cpu_ns=5_000_000))
    meter.on_control(Pong(ping.probe_id, ping.t0_ns, 1, 2))  # a duplicate: ignored
    meter.on_control(Pong(999, 0, 1, 2))  # never sent
    meter.on_control(Pong(second.probe_id, second.t0_ns + 1, 1, 2))  # wrong echo
    clock.now += 1_000_000
    meter.on_control(Pong(second.probe_id, second.t0_ns, second.t0_ns + host_offset + 200_000,
                          second.t0_ns + host_offset + 250_000, cpu_ns=7_000_000))
    meter.session_ended("over")
    figures = meter.figures()
    assert figures["clock"]["exchanges"] == 2
    assert abs(figures["clock"]["offset_ms"] - 2000) <= figures["clock"]["error_ms"]
    # 2 ms of host CPU over the 100.1 ms between the two pongs' arrival stamps.
    assert figures["cpu_pct"]["host"] == pytest.approx(2.0, abs=0.01)
    assert figures["cpu_pct"]["client"] == pytest.approx(10.0)
    assert "latency_ms" not in figures  # no session: an idle phase has no frames
    assert padded_ping(1, 2).startswith(encode_control(Ping(1, 2)))


def marked_picture(number: int, capture_ms: int, width: int = 640, height: int = 360):
    """A real decoded-looking picture (yuv420p) carrying the pattern's marker."""
    pixels = np.full((height, width * 4), 90, np.uint8)
    draw_marker(pixels, width, height, number, capture_ms)
    bgra = pixels.reshape(height, width, 4)
    return av.VideoFrame.from_ndarray(bgra, format="bgra").reformat(format="yuv420p")


def test_the_meter_reads_each_shown_frame_and_drops_what_disagrees():
    clock = FakeClock()
    meter = PhaseMeter(warmup_s=0.05, clock=clock, cpu=lambda: 0)
    meter.session_started(SessionInfo(("h", 1), 1, "h", None), lambda *a: None)
    t0 = clock.now
    meter.pong(Pong(1, t0, t0 + 50_000, t0 + 60_000), t0 + 100_000)  # offset ~0 +- 45 us
    for i in range(10):
        captured = t0 + i * 33_000_000
        first = captured + 5_000_000  # host 3 ms + network 2 ms
        presented = first + 4_000_000
        header_ms = captured // 1_000_000 + (7 if i == 9 else 0)  # the last one: stale pixels
        frame = AssembledFrame(100 + i, bytearray(1000), i == 0, header_ms, 3000, first,
                               first + 1_000_000, False, 0)
        picture = marked_picture(500 + i, captured // 1_000_000)
        meter.picture_shown(picture, frame, presented)
    blank = av.VideoFrame.from_ndarray(np.zeros((540, 640), np.uint8), format="yuv420p")
    meter.picture_shown(blank, frame, clock.now + 400_000_000)  # no marker at all
    figures = meter.figures()
    frames = figures["frames"]
    assert frames["shown"] == 11 and frames["markers_unreadable"] == 1
    assert frames["captured"] == 10 and frames["sent"] == 10  # 500..509, ids 100..109
    assert frames["measured"] == 8  # two inside the 50 ms warm-up
    assert frames["markers_disagreeing"] == 1 and frames["implausible"] == 0
    assert figures["latency_from"] == "pixels"  # the unmarked picture is not mixed in
    assert figures["stages_ms"]["host"]["p50"] == 3.0
    assert figures["stages_ms"]["client"]["p50"] == 4.0
    assert abs(figures["stages_ms"]["network"]["p50"] - 2.0) <= 0.6
    assert abs(figures["latency_ms"]["p50"] - 9.0) <= 0.6


def test_a_screen_without_a_marker_is_timed_by_the_header_and_says_so():
    clock = FakeClock()
    meter = PhaseMeter(clock=clock, cpu=lambda: 0)
    meter.session_started(SessionInfo(("h", 1), 1, "h", None), lambda *a: None)
    meter.pong(Pong(1, clock.now, clock.now, clock.now), clock.now + 1000)
    captured = clock.now + 10_000_000
    frame = AssembledFrame(1, bytearray(10), True, captured // 1_000_000, 2000,
                           captured + 3_000_000, captured + 3_000_000, False, 0)
    blank = av.VideoFrame.from_ndarray(np.zeros((540, 640), np.uint8), format="yuv420p")
    meter.picture_shown(blank, frame, captured + 8_000_000)
    figures = meter.figures()
    assert figures["latency_from"] == "header" and figures["frames"]["captured"] == 0
    assert abs(figures["latency_ms"]["p50"] - 8.0) <= 0.6
    assert figures["stages_ms"]["host"]["p50"] == 2.0


def test_a_meter_whose_frames_all_disagree_reports_no_latency():
    clock = FakeClock()
    meter = PhaseMeter(clock=clock, cpu=lambda: 0)
    meter.session_started(SessionInfo(("h", 1), 1, "h", None), lambda *a: None)
    meter.pong(Pong(1, clock.now, clock.now, clock.now), clock.now + 1000)
    frame = AssembledFrame(1, bytearray(10), True, 12345, 10, clock.now, clock.now, False, 0)
    meter.picture_shown(marked_picture(1, 999), frame, clock.now)
    figures = meter.figures()
    assert figures["latency_ms"] == {} and figures["stages_ms"]["host"] == {}


# -- the report ---------------------------------------------------------------------------


def sample_run(latency_p50: float = 12.0) -> BenchRun:
    plan = default_plan(phase_seconds=2, idle_seconds=1)[:2]
    machine = Machine("Linux 6.1.0 x86_64", "AMD EPYC", 2, "rootstream 0.1.0, Python 3.11.7")
    run = BenchRun(target=("10.213.1.1", 47100), started=1_790_000_000.0, client=machine,
                   decoder="software",
                   host={"name": "rig", "encoder": "x264", "capture": "test",
                         "machine": machine.as_dict()})
    run.phases.append((plan[0], {
        "seconds": 1.0, "clock": {"offset_ms": 0.01, "error_ms": 0.05},
        "rtt_ms": {"p50": 0.2, "p95": 0.3, "p99": 0.4, "min": 0.1},
        "cpu_pct": {"host": 1.0, "client": 0.5}}))
    run.phases.append((plan[1], {
        "seconds": 2.0, "clock": {"offset_ms": -0.0004, "error_ms": 0.1},
        "rtt_ms": {"p50": 0.5, "p95": 0.9, "p99": 1.5, "min": 0.2},
        "cpu_pct": {"host": 60.0, "client": 25.0},
        "stream": {"width": 1280, "height": 720, "fps": 60, "bitrate_kbps": 5000},
        "frames": {"sent": 118, "received": 118, "shown": 117},
        "latency_ms": {"p50": latency_p50, "p95": 20.0, "p99": 31.0},
        "stages_ms": {"host": {"p50": 4.0}, "network": {"p50": 1.0}, "client": {"p50": 7.0}},
        "loss": {"datagram_loss_pct": 0.0}, "wire_mbps": 5.2}))
    return run


def test_the_json_document_carries_schema_machines_backends_and_round_trips(tmp_path):
    report = build_report(sample_run())
    assert report["schema_version"] == SCHEMA_VERSION and report["started"].endswith("Z")
    assert report["host"]["encoder"] == "x264" and report["client"]["decoder"] == "software"
    assert report["phases"][1]["phase"]["bitrate_kbps"] == 5000
    path = tmp_path / "run.json"
    write_report(report, str(path))
    assert load_report(str(path)) == json.loads(json.dumps(report))


def test_the_table_puts_figures_down_and_phases_across():
    table = format_table(build_report(sample_run()))
    lines = table.splitlines()
    assert lines[0].startswith("rootstream bench 2026-") and "10.213.1.1:47100" in lines[0]
    assert "x264 encoder" in lines[1] and "software decoder" in lines[2]
    header = next(line for line in lines if "idle" in line and "720p60 5M" in line)
    assert header.index("idle") < header.index("720p60 5M")
    row = {line.split("  ")[0].strip(): line for line in lines}
    assert row["latency p50 ms"].split()[-1] == "12.0"
    assert row["latency p50 ms"].split()[-2] == "-"  # the idle phase streams nothing
    assert row["frames sent/recv/shown"].split()[-1] == "118/118/117"
    assert row["clock offset ms"].split()[-2:] == ["+0.01±0.05", "+0.00±0.10"]
    assert "(" not in table.split("\n\n", 1)[1]  # no ratios without a baseline


def test_compare_shows_now_over_before_per_figure():
    now, before = build_report(sample_run(9.0)), build_report(sample_run(12.0))
    table = format_table(now, before)
    assert "compared with the run of" in table
    row = {line.split("  ")[0].strip(): line for line in table.splitlines()}
    assert row["latency p50 ms"].endswith("9.0 (0.75x)")
    assert row["host cpu %"].endswith("60.0 (1.00x)")
    assert "x)" not in row["stream"] and "x)" not in row["clock offset ms"]
    # A phase the earlier run did not have is marked new rather than compared.
    before["phases"][1]["phase"]["name"] = "something else"
    assert "12.0 (new)" in format_table(build_report(sample_run(12.0)), before)


def test_ratio_of_what_is_missing_or_zero():
    assert ratio(2.0, 4.0) == 0.5
    assert ratio(0.0, 0.0) == 1.0
    assert ratio(1.0, 0.0) is None and ratio(None, 1.0) is None and ratio("a", 1.0) is None


def test_reports_that_cannot_be_compared_are_refused_with_a_reason(tmp_path):
    cases = {"missing.json": None, "garbage.json": "{not json", "other.json": '{"schema": "x"}',
             "newer.json": json.dumps({"schema": "rootstream-bench", "schema_version": 99,
                                       "phases": []}),
             "empty.json": json.dumps({"schema": "rootstream-bench", "schema_version": 1})}
    reasons = {}
    for name, text in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        with pytest.raises(ReportError) as caught:
            load_report(str(tmp_path / name))
        reasons[name] = str(caught.value)
    assert "cannot read" in reasons["missing.json"]
    assert "not JSON" in reasons["garbage.json"]
    assert "not a rootstream bench report" in reasons["other.json"]
    assert "newer rootstream (schema 99)" in reasons["newer.json"]
    assert "no phases" in reasons["empty.json"]


def test_the_progress_line():
    phase = default_plan(10, 5)[1]
    line = format_progress(Progress(1, 5, phase, 3.25, 190, 31.4, 0.42))
    assert line == "[2/5] 720p60 5M   3.2/10 s  shown 190  latency p50 31.4 ms  rtt 0.42 ms"
    idle = format_progress(Progress(0, 5, default_plan(10, 5)[0], 1.0, 0, None, 0.3))
    assert "shown" not in idle and "rtt 0.30 ms" in idle
