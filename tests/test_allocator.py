"""rootstream.allocator: freed native memory goes back to the system.

Each case runs in a fresh interpreter, so glibc's arenas hold nothing but
what the case itself allocated and the RSS it reads is its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from rootstream import allocator

pytestmark = pytest.mark.skipif(not allocator.available(),
                                reason="this C library has no malloc_trim (not glibc)")

# What the decode thread does to its arena, in miniature: blocks of varying
# sizes freed, with small blocks that live on between them, so the arena's
# top cannot shrink and glibc keeps the freed pages.
FRAGMENT = textwrap.dedent("""
    import json, os, sys, threading, time
    from rootstream import allocator

    def rss_kb():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))

    kept = []
    def churn():
        big = []
        for i in range(600):
            big.append(b"x" * (40_000 + (i * 7919) % 60_000))  # under the 128 kB mmap threshold
            kept.append(b"k" * (600 + i % 50))                 # outlives its neighbours
        del big
    worker = threading.Thread(target=churn)  # a thread arena, as in the client
    worker.start()
    worker.join()
    before = rss_kb()
    mode = sys.argv[1]
    if mode == "trim":
        took = allocator.trim()
    else:
        allocator.start_trimming(0.2)
        time.sleep(1.0)
        took = None
    print(json.dumps({"before": before, "after": rss_kb(), "took": took}))
""")


def _run(mode: str, env: dict | None = None) -> dict:
    done = subprocess.run([sys.executable, "-c", FRAGMENT, mode], capture_output=True,
                          text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_trim_hands_freed_blocks_back():
    figures = _run("trim")
    # ~30 MB of blocks were freed but kept by glibc; the trim returns most of it.
    assert figures["before"] - figures["after"] > 15_000, figures
    assert 0 <= figures["took"] < 0.5, figures


def test_the_trimming_thread_trims(tmp_path):
    log = tmp_path / "trim.jsonl"
    figures = _run("thread", env={**os.environ, allocator.ENV_LOG: str(log)})
    assert figures["before"] - figures["after"] > 15_000, figures
    # The log says what each trim took and gave back: the first gave back the most.
    trims = [json.loads(line) for line in log.read_text().splitlines()]
    assert trims and trims[0]["took_us"] >= 0, trims
    assert trims[0]["rss_before_kb"] - trims[0]["rss_after_kb"] > 15_000, trims
    # ...and glibc's own account before it: the freed blocks were free, not in use.
    assert trims[0]["free_kb"] > 15_000 and trims[0]["in_use_kb"] > 0, trims


def test_malloc_figures_see_a_block_in_use_and_then_free():
    before = allocator.malloc_figures()
    if "in_use_kb" not in before:
        pytest.skip("no mallinfo2 in this C library (glibc before 2.33, or musl)")
    import ctypes

    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    # Under the mmap threshold, so it comes from an arena: 64 kB, touched.
    blocks = [libc.malloc(64 * 1024) for _ in range(64)]
    for block in blocks:
        ctypes.memset(block, 1, 64 * 1024)
    held = allocator.malloc_figures()
    for block in blocks:
        libc.free(block)
    after = allocator.malloc_figures()
    assert held["in_use_kb"] - before["in_use_kb"] >= 4000, (before, held)
    assert held["in_use_kb"] - after["in_use_kb"] >= 4000, (held, after)
    assert held["py_blocks"] > 0


def test_interval_from_environment(monkeypatch):
    monkeypatch.delenv(allocator.ENV_EVERY, raising=False)
    assert allocator.interval_from_environment() == allocator.DEFAULT_EVERY_S
    monkeypatch.setenv(allocator.ENV_EVERY, "0")
    assert allocator.interval_from_environment() == 0
    assert allocator.start_trimming() is None  # off: no thread
    monkeypatch.setenv(allocator.ENV_EVERY, "2.5")
    assert allocator.interval_from_environment() == 2.5
    monkeypatch.setenv(allocator.ENV_EVERY, "often")
    assert allocator.interval_from_environment() == allocator.DEFAULT_EVERY_S
