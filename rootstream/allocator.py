"""Giving freed native memory back to the system: glibc's ``malloc_trim``, every
few seconds, on a thread of its own.

Why (docs/SOAK.md has the measurements): glibc keeps what a thread frees in
that thread's arena for reuse and returns pages to the system only from the
top of an arena.  Two things we do leave free memory there for good:

- frame-sized pictures (1.4 MB at 720p, 8.3 MB for 1080p BGRX) raise glibc's
  mmap threshold the first time one is freed; from then on they come from
  an arena, and one more stays there each time the machine gets busy: the
  host's RSS climbs in frame-sized steps and never comes down.
- encoded frames and their copies (the ``bytes`` handed to FFmpeg, the packet
  FFmpeg copies it into) have a different size every frame, keyframes tens
  of times larger than P-frames; the holes they leave in the client's decode
  thread's arena were ~0.3 MB after ten lossy minutes.

``malloc_trim(0)`` walks every arena and hands the pages of its free blocks
back (madvise), whatever their position.  It takes each arena's lock for the
walk, so it runs here, on a thread of its own every ``ROOTSTREAM_MALLOC_TRIM``
seconds (default 10; ``0`` turns it off, for before/after soaks), never on a
frame's path; a thread that mallocs in an arena being walked waits for it
(the 1080p host's trims took 0.3 ms at the median, 4 ms at p90 and 21 ms at
worst at load 6).  A page handed back costs a page fault when reused: that
host gave back a median 3 MB (some 800 pages) per trim, every 10 s, not per
frame.  On a C library without ``malloc_trim``
(musl) nothing runs.  ``ROOTSTREAM_MALLOC_TRIM_LOG=PATH`` appends one JSON
line per trim (how long it took, RSS before and after, and glibc's
malloc figures before it: ``malloc_figures``, and pymalloc's own:
``census.pymalloc_figures``) for bench/soak.py.
"""

from __future__ import annotations

import ctypes
import json
import os
import threading
import time

from rootstream.census import pymalloc_figures

ENV_EVERY = "ROOTSTREAM_MALLOC_TRIM"
ENV_LOG = "ROOTSTREAM_MALLOC_TRIM_LOG"
DEFAULT_EVERY_S = 10.0


def _malloc_trim():
    try:
        libc = ctypes.CDLL(None)  # the C library this process already runs on
    except OSError:
        return None
    function = getattr(libc, "malloc_trim", None)
    if function is not None:
        function.argtypes = [ctypes.c_size_t]
        function.restype = ctypes.c_int
    return function


_MALLOC_TRIM = _malloc_trim()


class _Mallinfo2(ctypes.Structure):
    # struct mallinfo2 (glibc 2.33+): every field a size_t.
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _mallinfo2():
    try:
        function = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    function.argtypes = []
    function.restype = _Mallinfo2
    return function


_MALLINFO2 = _mallinfo2()


def malloc_figures() -> dict:
    """glibc's own account, in kB: what malloc has handed out and not taken
    back (``in_use``), what its arenas hold free (``free``: a trim can give
    that back), what it serves by mmap (``mmapped``); with Python's count of
    its live objects' blocks.  Growth of ``in_use`` is a native leak (or a
    pool filling); growth of ``free`` is the allocator, not us; growth of
    RSS with neither is outside malloc (pymalloc's arenas, thread stacks)."""
    import sys

    figures = {"py_blocks": sys.getallocatedblocks()}
    if _MALLINFO2 is not None:
        info = _MALLINFO2()
        figures.update(in_use_kb=info.uordblks // 1024, free_kb=info.fordblks // 1024,
                       mmapped_kb=info.hblkhd // 1024, arenas_kb=info.arena // 1024)
    return figures


def available() -> bool:
    return _MALLOC_TRIM is not None


def trim() -> float | None:
    """Hand every arena's free pages back now; the seconds it took, or None
    where the C library has no ``malloc_trim``.  ctypes lets go of the GIL
    for the call, so Python threads run on meanwhile."""
    if _MALLOC_TRIM is None:
        return None
    started = time.perf_counter()
    _MALLOC_TRIM(0)
    return time.perf_counter() - started


def interval_from_environment() -> float:
    """Seconds between trims: ``ROOTSTREAM_MALLOC_TRIM``, else the default; 0 is off."""
    raw = os.environ.get(ENV_EVERY, "")
    try:
        every = float(raw) if raw.strip() else DEFAULT_EVERY_S
    except ValueError:
        every = DEFAULT_EVERY_S  # a typo must not stop a stream; the default is safe
    return max(every, 0.0)


def start_trimming(every: float | None = None) -> threading.Thread | None:
    """Trim every ``every`` seconds (default: from the environment) on a daemon
    thread; None when off or unavailable."""
    every = interval_from_environment() if every is None else every
    if every <= 0 or not available():
        return None
    thread = threading.Thread(target=_trim_loop, args=(every, os.environ.get(ENV_LOG)),
                              name="malloc-trim", daemon=True)
    thread.start()
    return thread


def _trim_loop(every: float, log_path: str | None) -> None:
    started = time.monotonic()
    while True:
        time.sleep(every)
        if not log_path:
            trim()
            continue
        before, figures = _rss_kb(), malloc_figures()
        # pymalloc's arenas against its live blocks: fragmentation or objects kept.
        figures.update(pymalloc=pymalloc_figures())
        took = trim()
        record = {"t": round(time.monotonic() - started, 1), "took_us": round(took * 1e6),
                  "rss_before_kb": before, "rss_after_kb": _rss_kb(), **figures}
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")


def _rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
