"""Python heap growth by file:line, for soaks: ``ROOTSTREAM_TRACEMALLOC=PATH``.

A leak in a long session shows first as a slope in RSS; tracemalloc says
which line allocates what stays.  With the variable set, ``rootstream host``
and ``rootstream connect`` start tracemalloc, take a reference snapshot once
``ROOTSTREAM_TRACEMALLOC_AFTER`` seconds have passed (default 60: start-up
allocations and full rings are not growth), then append one JSON line to
PATH every ``ROOTSTREAM_TRACEMALLOC_EVERY`` seconds (default 60) with the
lines whose allocated size grew most since the reference.  bench/soak.py
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
    path = os.environ.get(ENV_PATH)
    if not path:
        return None
    after = float(os.environ.get(f"{ENV_PATH}_AFTER", "60"))
    every = float(os.environ.get(f"{ENV_PATH}_EVERY", "60"))
    tracemalloc.start(FRAMES)
    thread = threading.Thread(target=_dump_loop, args=(path, after, every),
                              name="memtrace", daemon=True)
    thread.start()
    return thread


def top_growth(reference: tracemalloc.Snapshot, now: tracemalloc.Snapshot,
               top: int = TOP) -> list[dict]:
    """The ``top`` file:lines whose live size grew most between two snapshots."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__),
              tracemalloc.Filter(False, __file__)]
    stats = now.filter_traces(ignore).compare_to(reference.filter_traces(ignore), "lineno")
    stats.sort(key=lambda s: s.size_diff, reverse=True)
    return [{"where": f"{s.traceback[0].filename}:{s.traceback[0].lineno}",
             "size_diff": s.size_diff, "count_diff": s.count_diff, "size": s.size}
            for s in stats[:top]]


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
                  "top": top_growth(reference, snapshot)}
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
