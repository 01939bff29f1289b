"""`rootstream bench` against a real `rootstream host` across a veth pair.

The host runs in namespace a, the bench in namespace b, each a real process
(`python -m rootstream_cli ...`), with and without a tc token bucket on the
host's uplink.  Both share this machine's monotonic clock, so the true clock
offset is zero: the bench's estimate must contain zero within its own error
bound, and its latency must agree with what the host and client measure
themselves.

Tolerances, stated: the client's own "glass" ring is the same capture-to-
present latency on the shared clock without any offset, in whole
milliseconds, over every frame (the bench skips a warm-up); they agree within
the offset's error + 1.5 ms (the two roundings) + 15 % (the warm-up frames).
The client's own "client" and "host" rings are the same per-frame numbers the
bench splits out, so they agree within 0.5 ms + 15 %.  The bench's host stage
is capture -> encoded: the host's own "convert" and "encode" rings, whose
p50s add up to it within 1 ms + 25 % (a sum of medians is not the median of
sums); the host's "host" ring runs on to the last datagram sent (pacing
included), so its p50 is at least the bench's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from rootstream.benchrun.report import format_table, load_report
from rootstream.testing.netns import NamespacePair, probe_netns

_missing = [f"{name}: {reason}" for name, ok, reason in probe_netns() if not ok]
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(_missing), reason="; ".join(_missing))]

PORT = 47150
PHASE = "640x360@30:2"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "rootstream_cli", *args]


def _insecure() -> bool:
    """Whether the host encrypts unless told not to: then this measurement runs in the
    clear (on a private veth pair), both ends told so."""
    help_text = subprocess.run(_cli("host", "--help"), capture_output=True, text=True,
                               timeout=30).stdout
    return "--insecure" in help_text


INSECURE_HOST = ["--insecure", "--force"] if _insecure() else []
INSECURE_BENCH = ["--insecure"] if INSECURE_HOST else []


class Rig:
    """A host in namespace a, benches run from namespace b."""

    def __init__(self, pair: NamespacePair, tmp_path):
        self.pair = pair
        self.tmp = tmp_path
        self.host_stats = tmp_path / "host.jsonl"
        self.host_log = tmp_path / "host.log"
        self._log = open(self.host_log, "w")  # noqa: SIM115 - closed in stop()
        self.host = pair.a.popen(
            _cli("host", "--source", "test", "--encoder", "x264", "--bind", pair.a.address,
                 "--port", str(PORT), "--size", "640x360", "--fps", "30", "--bitrate", "2",
                 "--stats-interval", "0.5", "--stats-json", str(self.host_stats),
                 *INSECURE_HOST),
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        try:
            while "listening on" not in self.host_log.read_text():
                assert self.host.poll() is None, self.host_log.read_text()
                assert time.monotonic() < deadline, self.host_log.read_text()
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    def bench(self, name: str, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
        out = self.tmp / f"{name}.json"
        done = self.pair.b.run(
            _cli("bench", f"{self.pair.a.address}:{PORT}", "--idle-seconds", "1",
                 "--phase-seconds", "3", "--same-clock", "--json", str(out), *INSECURE_BENCH,
                 *args),
            capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, done.stderr + self.host_log.read_text()
        return done, json.loads(out.read_text())

    def host_report(self) -> dict:
        lines = [json.loads(line) for line in self.host_stats.read_text().splitlines() if line]
        return [r for r in lines if r["latency_ms"].get("host")][-1]

    def stop(self) -> None:
        if self.host.poll() is None:
            self.host.terminate()
            try:
                self.host.wait(10)
            except subprocess.TimeoutExpired:
                self.host.kill()
                self.host.wait()
        self._log.close()


@pytest.fixture
def rig(tmp_path):
    with NamespacePair(subnet=41) as pair:
        rig = Rig(pair, tmp_path)
        try:
            yield rig
        finally:
            rig.stop()


def _close(a: float, b: float, absolute: float, share: float) -> bool:
    return abs(a - b) <= absolute + share * max(abs(a), abs(b))


def _check_offsets_contain_zero(report: dict) -> None:
    for phase in report["phases"]:
        clock = phase["clock"]
        assert clock["exchanges"] >= 10, phase
        # Same machine, same clock: the truth is 0 (1e-4 ms: the JSON's rounding).
        assert abs(clock["offset_ms"]) <= clock["error_ms"] + 1e-4, clock
        assert clock["error_ms"] <= clock["min_rtt_ms"] / 2 + 1e-4


def test_bench_across_a_veth_pair_agrees_with_the_host_and_client_own_figures(rig):
    done, report = rig.bench("plain", "--phase", "idle", "--phase", PHASE)
    assert [p["phase"]["name"] for p in report["phases"]] == ["idle", "360p30 2M"]
    _check_offsets_contain_zero(report)
    assert report["host"]["capture"] == "test" and report["host"]["encoder"] == "x264"
    assert report["host"]["machine"]["cpus"] >= 1 and report["client"]["decoder"]

    idle, stream = report["phases"]
    assert idle["rtt_ms"]["p50"] > 0 and "latency_ms" not in idle
    announced = stream["stream"]
    assert (announced["width"], announced["height"], announced["fps"]) == (640, 360, 30)
    assert announced["bitrate_kbps"] == 2000  # the host took the phase's wishes
    frames = stream["frames"]
    assert frames["shown"] >= 40 and frames["measured"] >= 0.7 * frames["shown"]
    assert frames["markers_unreadable"] == 0
    assert frames["markers_disagreeing"] == 0 and frames["implausible"] == 0
    assert frames["captured"] >= frames["sent"] >= frames["shown"]
    assert stream["loss"]["datagram_loss_pct"] == 0
    assert 0.5 < stream["wire_mbps"] < 4
    assert stream["cpu_pct"]["host"] > 0 and stream["cpu_pct"]["client"] > 0

    assert stream["latency_from"] == "pixels"
    latency, stages = stream["latency_ms"], stream["stages_ms"]
    assert latency["p50"] <= latency["p95"] <= latency["p99"]
    error = stream["clock"]["error_ms"]
    own = stream["client_stats"]["latency_ms"]
    assert _close(latency["p50"], own["glass"]["p50"], error + 1.5, 0.15), (latency, own)
    assert _close(stages["client"]["p50"], own["client"]["p50"], 0.5, 0.15), (stages, own)
    assert _close(stages["host"]["p50"], own["host"]["p50"], 0.5, 0.15), (stages, own)
    host_own = rig.host_report()["latency_ms"]
    assert host_own["host"]["p50"] >= stages["host"]["p50"] - 0.5, (stages, host_own)
    encoded = host_own["convert"]["p50"] + host_own["encode"]["p50"]
    assert _close(stages["host"]["p50"], encoded, 1.0, 0.25), (stages, host_own)
    assert "360p30 2M" in done.stdout and "latency p50 ms" in done.stdout


def test_bench_under_a_rate_cap_and_its_json_round_trips_through_compare(rig, tmp_path):
    _, first = rig.bench("first", "--phase", PHASE)
    # The host's uplink now carries at most 1.5 Mbit/s: a 2 Mbit/s stream cannot pass
    # whole, and the bench must say so rather than report the wish.
    rig.pair.a.limit_rate("1500kbit", burst="16kb", latency="100ms")
    done, capped = rig.bench("capped", "--phase", PHASE, "--compare",
                             str(tmp_path / "first.json"))
    _check_offsets_contain_zero(capped)
    phase = capped["phases"][0]
    assert phase["wire_mbps"] < 1.5 * 1.1
    assert phase["frames"]["shown"] > 0
    assert phase["rtt_ms"]["p50"] > first["phases"][0]["rtt_ms"]["p50"]

    # --compare read the first run and printed now/before per figure.
    assert "compared with the run of" in done.stdout
    row = next(line for line in done.stdout.splitlines() if line.startswith("wire Mbit/s"))
    assert row.rstrip().endswith("x)")
    # What was written reads back as it was, and compares with itself as 1.00x.
    again = load_report(str(tmp_path / "capped.json"))
    assert again == capped
    table = format_table(again, again)
    row = next(line for line in table.splitlines() if line.startswith("latency p50 ms"))
    assert row.endswith("(1.00x)")
