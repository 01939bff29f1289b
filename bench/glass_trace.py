"""Where a slow change spent its time: the client's frame trace joined with the observer.

rootstream's client, run with ``--same-clock --frame-trace PATH``, writes one
line per new marker with every stamp on the way (rootstream.client.report
.FrameTrace); the observer knows, for the same marker, when it landed on
display A and when it was first seen on display B.  All of them are
CLOCK_MONOTONIC on this one machine, so each change splits into spans that
add up to the observer's figure:

- ``wait``: landed on A -> the host's capture (the ROOT header's ms: +-1 ms);
- ``host``: capture -> encoded (the fragment header's µs);
- ``to client``: encoded -> the frame complete on the client (send, pacing,
  loopback, reassembly; +-1 ms, the capture ms again);
- ``decode``, ``present``: the client's own stamps;
- ``display``: presented -> first seen on B (the X server showing the put,
  XDAMAGE, the watcher's grab and read: what ``observer-floor`` measures
  alone, plus the put).

With the host's own trace (``rootstream host --frame-trace``, joined by
frame id) the host's part is exact and finer: ``wait`` to the capture
stamp (ns), ``convert`` (the screen read and BGRX -> NV12), ``mailbox``
(waiting for the encode thread, busy with the frame before), ``encode``,
``send`` (fragments, FEC, pacing: the host's ``sent`` stamp follows the
parity datagrams too) and ``to client`` from there to the frame complete on
the client (a little below 0 when the data alone completed it first).

``breakdown`` gives each span's median over all changes and over the slowest
5 % (those at or above the observer's p95), so a tail shows where it comes from.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

SPANS = ("wait", "host", "to client", "decode", "present", "display")
HOST_SPANS = ("wait", "convert", "mailbox", "encode", "send", "to client", "decode", "present",
              "display")


def spans(trace_line: dict, landed_ns: int, seen_ns: int,
          host_line: dict | None = None) -> dict[str, float]:
    """One change's spans in ms (HOST_SPANS with the host's line, else SPANS)."""
    client = {"decode": (trace_line["decoded_ns"] - trace_line["assembled_ns"]) / 1e6,
              "present": (trace_line["presented_ns"] - trace_line["decoded_ns"]) / 1e6,
              "display": (seen_ns - trace_line["presented_ns"]) / 1e6}
    if host_line is not None:
        h = host_line
        return {"wait": (h["captured_ns"] - landed_ns) / 1e6,
                "convert": (h["converted_ns"] - h["captured_ns"]) / 1e6,
                "mailbox": (h["taken_ns"] - h["converted_ns"]) / 1e6,
                "encode": (h["encoded_ns"] - h["taken_ns"]) / 1e6,
                "send": (h["sent_ns"] - h["encoded_ns"]) / 1e6,
                "to client": (trace_line["assembled_ns"] - h["sent_ns"]) / 1e6, **client}
    captured_ms = trace_line["captured_ms"]
    encoded_ms = captured_ms + trace_line["host_us"] / 1000
    return {"wait": captured_ms - landed_ns / 1e6,
            "host": trace_line["host_us"] / 1000,
            "to client": trace_line["assembled_ns"] / 1e6 - encoded_ms, **client}


def read_trace(path: Path, key: str = "marker") -> dict[int, dict]:
    """``key`` -> its trace line: the client's (key "marker": its first picture of
    each) or the host's (key "frame_id")."""
    if not path.exists():
        return {}
    lines = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {line[key]: line for line in lines}


def breakdown(trace: dict[int, dict], timed: list[tuple[int, int, int]],
              host: dict[int, dict] | None = None) -> dict:
    """{"all": {span: median ms}, "slow": {...}, "joined": n, "slow_n": n}; empty without
    a trace.  The 32-bit marker ms wraps after 49 days: the painter's ms are near now."""
    rows = []
    for number, landed_ns, seen_ns in timed:
        line = trace.get(number & 0xFFFFFFFF)
        if line is None:
            continue
        host_line = (host or {}).get(line["frame_id"])
        if host and host_line is None:
            continue  # a frame the host trace missed: never mix the two kinds of row
        rows.append(((seen_ns - landed_ns) / 1e6, spans(line, landed_ns, seen_ns, host_line)))
    if len(rows) < 20:
        return {}
    rows.sort(key=lambda row: row[0])
    slow = rows[int(len(rows) * 0.95):]
    names = list(rows[0][1])
    return {"joined": len(rows), "slow_n": len(slow),
            "all": {s: statistics.median(r[1][s] for r in rows) for s in names},
            "slow": {s: statistics.median(r[1][s] for r in slow) for s in names},
            "slow_total": statistics.median(r[0] for r in slow)}


def describe(breakdowns: list[dict]) -> list[str]:
    """Table lines: each span's median over the runs, all changes / the slowest 5 %."""
    runs = [b for b in breakdowns if b]
    if not runs:
        return []
    names = [s for s in HOST_SPANS if all(s in b["all"] for b in runs)] or \
        [s for s in SPANS if all(s in b["all"] for b in runs)]
    cells = "  ".join(
        f"{s} {statistics.median(b['all'][s] for b in runs):.1f}/"
        f"{statistics.median(b['slow'][s] for b in runs):.1f}" for s in names)
    slow = statistics.median(b["slow_total"] for b in runs)
    joined = sum(b["joined"] for b in runs)
    return [f"where the time went, ms (median of all changes / of the slowest 5 %, whose "
            f"total is {slow:.1f}; {joined} changes joined): {cells}"]


__all__ = ["HOST_SPANS", "SPANS", "breakdown", "describe", "read_trace", "spans"]
