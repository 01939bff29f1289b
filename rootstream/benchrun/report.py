"""The bench's outputs: the JSON document, the terminal table, ``--compare``.

JSON schema (``"schema": "rootstream-bench"``, ``"schema_version": 1``)::

    started        ISO 8601 UTC time the run began
    target         "HOST:PORT" as given
    client         {"machine": MACHINE, "decoder": name, "presenter": "null"}
    host           {"name", "encoder", "capture", "machine": MACHINE} from the
                   host's config (empty strings from a host too old to say)
    phases         [PHASE, ...] in the order run
    error          why the run stopped before the end of its plan, or null
    MACHINE        {"system", "cpu", "cpus", "software"}
    PHASE          {"phase": {"name", "seconds", "width", "height", "fps",
                    "bitrate_kbps", "idle"},                      what was asked
                    "stream": {"width", "height", "fps", "bitrate_kbps",
                               "last_bitrate_kbps"},  what the host announced, and
                    its last rate (adaptive bitrate moves it); absent for idle
                    "seconds": measured,
                    "clock": {"offset_ms", "error_ms", "min_rtt_ms", "exchanges",
                              "used", "rejected"},     host clock - ours, +- error
                    "rtt_ms": {"p50", "p95", "p99", "min"},
                    "cpu_pct": {"host", "client"},  % of one core, null when unknown
                    and for streaming phases:
                    "frames": {"captured", "sent", "received", "shown", "lost", "measured",
                               "markers_unreadable",
                               "markers_disagreeing", "implausible"},
                    "latency_ms": {"p50", "p95", "p99"},  capture -> shown
                    "latency_from": "pixels" (the test pattern's marker) or "header"
                    (a screen: the host's capture stamp in the ROOT header)
                    "stages_ms": {"host"|"network"|"client": {"p50", "p95", "p99"}},
                    "loss": {"frames_lost", "datagrams_lost", "datagram_loss_pct"},
                    "wire_mbps", "video_mbps", "end",
                    "client_stats": the client's own stats report}

A reader accepts any document of schema_version 1 (fields it does not know are
ignored, so version 1 only grows); a higher version is refused with a clear
error rather than misread.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rootstream.errors import RootStreamError

if TYPE_CHECKING:  # the driver pulls in the whole client; reading a report needs none of it
    from rootstream.benchrun.run import BenchRun, Progress

SCHEMA = "rootstream-bench"
SCHEMA_VERSION = 1


class ReportError(RootStreamError):
    """A file given to --compare is not a bench report this version can read."""


def build_report(run: BenchRun) -> dict:
    host = run.host or {"name": "", "encoder": "", "capture": "", "machine": {}}
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.started)),
        "target": f"{run.target[0]}:{run.target[1]}",
        "client": {"machine": run.client.as_dict(), "decoder": run.decoder,
                   "presenter": "null"},
        "host": host,
        "phases": [{"phase": phase.as_dict(), **figures} for phase, figures in run.phases],
        "error": str(run.failure) if run.failure is not None else None,
    }


def write_report(report: dict, path: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2, sort_keys=True)
        handle.write("\n")


def load_report(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            report = json.load(handle)
    except OSError as exc:
        raise ReportError(f"cannot read the report {path}", details=[str(exc)]) from exc
    except ValueError as exc:
        raise ReportError(f"{path} is not JSON", details=[str(exc)]) from exc
    if not isinstance(report, dict) or report.get("schema") != SCHEMA:
        raise ReportError(f"{path} is not a rootstream bench report",
                          hint="give --compare a file written by `rootstream bench --json`")
    version = report.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ReportError(f"{path} was written by a newer rootstream (schema {version})",
                          hint=f"this version reads schema {SCHEMA_VERSION}")
    if not isinstance(report.get("phases"), list):
        raise ReportError(f"{path} has no phases")
    return report


# -- the table ---------------------------------------------------------------------------


def _get(phase: dict, *path):
    value = phase
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


@dataclass(frozen=True)
class Figure:
    label: str
    value: Callable[[dict], float | str | None]
    digits: int = 1
    compare: bool = True  # a ratio means something (not for text or offsets)


def _stream(phase: dict) -> str | None:
    stream = phase.get("stream")
    if not stream:
        return None
    return f"{stream['width']}x{stream['height']}@{stream['fps']}"


def _frames(phase: dict) -> str | None:
    frames = phase.get("frames")
    if not frames:
        return None
    return f"{frames.get('sent', 0)}/{frames.get('received', 0)}/{frames.get('shown', 0)}"


def _offset(phase: dict) -> str | None:
    clock = phase.get("clock") or {}
    if clock.get("offset_ms") is None:
        return None
    offset = round(clock["offset_ms"], 2) or 0.0  # never "-0.00"
    return f"{offset:+.2f}±{clock['error_ms']:.2f}"


def _target_mbps(phase: dict) -> str | None:
    """The rate the host announced, and where its adaptation left it if it moved."""
    first, last = _get(phase, "stream", "bitrate_kbps"), _get(phase, "stream",
                                                             "last_bitrate_kbps")
    if not first:
        return None
    if last and last != first:
        return f"{first / 1000:g}->{last / 1000:g}"
    return f"{first / 1000:g}"


FIGURES = [
    Figure("stream", _stream, compare=False),
    Figure("frames sent/recv/shown", _frames, compare=False),
    Figure("latency from", lambda p: p.get("latency_from"), compare=False),
    Figure("latency p50 ms", lambda p: _get(p, "latency_ms", "p50")),
    Figure("latency p95 ms", lambda p: _get(p, "latency_ms", "p95")),
    Figure("latency p99 ms", lambda p: _get(p, "latency_ms", "p99")),
    Figure("  host p50 ms", lambda p: _get(p, "stages_ms", "host", "p50")),
    Figure("  network p50 ms", lambda p: _get(p, "stages_ms", "network", "p50")),
    Figure("  client p50 ms", lambda p: _get(p, "stages_ms", "client", "p50")),
    Figure("rtt p50 ms", lambda p: _get(p, "rtt_ms", "p50"), digits=2),
    Figure("rtt p99 ms", lambda p: _get(p, "rtt_ms", "p99"), digits=2),
    Figure("loss %", lambda p: _get(p, "loss", "datagram_loss_pct"), digits=2),
    Figure("host Mbit/s", _target_mbps, compare=False),
    Figure("wire Mbit/s", lambda p: p.get("wire_mbps"), digits=2),
    Figure("host cpu %", lambda p: _get(p, "cpu_pct", "host")),
    Figure("client cpu %", lambda p: _get(p, "cpu_pct", "client")),
    Figure("clock offset ms", _offset, compare=False),
]


def _cell(value, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:.{digits}f}"


def ratio(now, before) -> float | None:
    """now / before, for numbers both sides have; None otherwise."""
    if isinstance(now, bool) or isinstance(before, bool):
        return None
    if not isinstance(now, (int, float)) or not isinstance(before, (int, float)):
        return None
    if before == 0:
        return 1.0 if now == 0 else None
    return now / before


def format_table(report: dict, baseline: dict | None = None) -> str:
    """Figures down, phases across; with a baseline each number gets now/before."""
    phases = report["phases"]
    earlier = {p.get("phase", {}).get("name"): p for p in (baseline or {}).get("phases", [])}
    header = ["", *(p["phase"]["name"] for p in phases)]
    rows = [header]
    for figure in FIGURES:
        row = [figure.label]
        for phase in phases:
            value = figure.value(phase)
            text = _cell(value, figure.digits)
            if baseline is not None and figure.compare:
                before = earlier.get(phase["phase"]["name"])
                r = ratio(value, figure.value(before)) if before is not None else None
                text += f" ({r:.2f}x)" if r is not None else (" (new)" if before is None
                                                              and value is not None else "")
            row.append(text)
        if any(cell != "-" for cell in row[1:]):
            rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i])
                       for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([*_preamble(report, baseline), *lines])


def _preamble(report: dict, baseline: dict | None) -> list[str]:
    host, client = report.get("host") or {}, report.get("client") or {}
    hm, cm = host.get("machine") or {}, client.get("machine") or {}
    lines = [
        f"rootstream bench {report.get('started', '')} -> {report.get('target', '')}",
        f"host:   {host.get('name') or '?'}: {hm.get('cpu') or '?'} x{hm.get('cpus') or '?'}, "
        f"{hm.get('system') or '?'}; {host.get('capture') or '?'} capture, "
        f"{host.get('encoder') or '?'} encoder; {hm.get('software') or '?'}",
        f"client: {cm.get('cpu') or '?'} x{cm.get('cpus') or '?'}, {cm.get('system') or '?'}; "
        f"{client.get('decoder') or '?'} decoder, {client.get('presenter') or '?'} presenter; "
        f"{cm.get('software') or '?'}",
    ]
    if baseline is not None:
        lines.append(f"compared with the run of {baseline.get('started', '?')} "
                     f"-> {baseline.get('target', '?')}: (now/before)")
    return [*lines, ""]


def format_progress(progress: Progress) -> str:
    """One line, rewritten in place while a phase runs."""
    phase = progress.phase
    parts = [f"[{progress.index + 1}/{progress.phases}] {phase.name}",
             f"{progress.elapsed_s:4.1f}/{phase.seconds:g} s"]
    if not phase.idle:
        parts.append(f"shown {progress.shown}")
    if progress.latency_ms is not None:
        parts.append(f"latency p50 {progress.latency_ms:.1f} ms")
    if progress.rtt_ms is not None:
        parts.append(f"rtt {progress.rtt_ms:.2f} ms")
    return "  ".join(parts)
