"""Shared by the benchmark modules: median/p99 per case and a printed summary.

A module that wants a summary defines ``summary_lines(results)`` and records
each case with ``bench_summary.record(benchmark, *key)``; at the end of the
module the lines are written past pytest's output capture, since the figures
are the point of the run.
"""

from __future__ import annotations

import pytest


class BenchSummary:
    """Median and p99 seconds per recorded case, keyed as the module likes."""

    def __init__(self):
        self.results: dict[tuple, tuple[float, float]] = {}

    def record(self, benchmark, *key) -> tuple[float, float]:
        timings = sorted(benchmark.stats.stats.data)
        median = benchmark.stats.stats.median
        p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
        self.results[key] = (median, p99)
        benchmark.extra_info["median_us"] = round(median * 1e6, 1)
        benchmark.extra_info["p99_us"] = round(p99 * 1e6, 1)
        return median, p99


@pytest.fixture(scope="module")
def bench_summary(request):
    summary = BenchSummary()
    yield summary
    write_lines = getattr(request.module, "summary_lines", None)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if write_lines is None or reporter is None or capture is None or not summary.results:
        return
    with capture.global_and_fixture_disabled():
        for line in write_lines(summary.results):
            reporter.write_line(line)
