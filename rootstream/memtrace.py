"""Python heap growth by file:line, for soaks: ``ROOTSTREAM_TRACEMALLOC=PATH``.

A leak in a long session shows first as a slope in RSS; tracemalloc says
which line allocates what stays.  With the variable set, ``rootstream host``
and ``rootstream connect`` start tracemalloc, take a reference snapshot once
``ROOTSTREAM_TRACEMALLOC_AFTER`` seconds have passed (default 60: start-up
allocations and full rings are not growth), then append one JSON line to
PATH every ``ROOTSTREAM_TRACEMALLOC_EVERY`` seconds (default 60) with the
lines whose allocated size grew most since the reference, and those whose
count of live blocks grew most (``_FRAMES`` sets the depth of each
traceback, default 1).  bench/soak.py
reads the file.  Tracing costs CPU (every allocation is recorded), so it is
off unless asked for.
"""

from __future__ import annotations

import json
import os
import threading
import time
import tracemalloc

ENV_PATH = "ROOTSTREAM_TRACEMALLOC"
TOP = 15
FRAMES = 1  # file:line of the allocation itself: enough to name a leak, and cheap


def start_from_environment() -> threading.Thread | None:
    """Start tracing when ``ROOTSTREAM_TRACEMALLOC`` names a file; else nothing."""
    if not os.environ.get(ENV_PATH):
        return None
    tracemalloc.start(int(os.environ.get(f"{ENV_PATH}_FRAMES", FRAMES)))
    return start_logger(ENV_PATH, 60.0, _dump_loop, "memtrace")


def start_logger(env_path: str, default_every: float, loop, name: str) -> threading.Thread | None:
    """Run ``loop(path, after, every)`` on a daemon thread when ``env_path``
    names a file: ``{env_path}_AFTER`` seconds before its first record
    (default 60), ``{env_path}_EVERY`` between records."""
    path = os.environ.get(env_path)
    if not path:
        return None
    after = float(os.environ.get(f"{env_path}_AFTER", "60"))
    every = float(os.environ.get(f"{env_path}_EVERY", str(default_every)))
    thread = threading.Thread(target=loop, args=(path, after, every), name=name, daemon=True)
    thread.start()
    return thread


def top_growth(reference: tracemalloc.Snapshot, now: tracemalloc.Snapshot,
               top: int = TOP) -> list[dict]:
    """The ``top`` file:lines whose live size grew most between two snapshots."""
    stats = _compare(reference, now)
    stats.sort(key=lambda s: s.size_diff, reverse=True)
    return [_row(s) for s in stats[:top]]


def top_count_growth(reference: tracemalloc.Snapshot, now: tracemalloc.Snapshot,
                     top: int = TOP) -> list[dict]:
    """The ``top`` tracebacks whose number of live blocks grew most: a creep
    of one small object a second is a few kB after minutes, lost among the
    sizes of what is in flight, but it leads by count."""
    stats = _compare(reference, now)
    stats.sort(key=lambda s: s.count_diff, reverse=True)
    return [_row(s) for s in stats[:top]]


def _compare(reference, now) -> list[tracemalloc.StatisticDiff]:
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__),
              tracemalloc.Filter(False, __file__)]
    return now.filter_traces(ignore).compare_to(reference.filter_traces(ignore), "traceback")


def _row(stat: tracemalloc.StatisticDiff) -> dict:
    where = " < ".join(f"{frame.filename}:{frame.lineno}" for frame in stat.traceback)
    return {"where": where, "size_diff": stat.size_diff, "count_diff": stat.count_diff,
            "size": stat.size}


def _dump_loop(path: str, after: float, every: float) -> None:
    started = time.monotonic()
    time.sleep(after)
    reference = tracemalloc.take_snapshot()
    taken = time.monotonic()
    while True:
        time.sleep(every)
        snapshot = tracemalloc.take_snapshot()
        record = {"t": round(time.monotonic() - started, 1),
                  "since_reference_s": round(time.monotonic() - taken, 1),
                  "traced": tracemalloc.get_traced_memory()[0],
                  "top": top_growth(reference, snapshot),
                  "top_count": top_count_growth(reference, snapshot)}
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
