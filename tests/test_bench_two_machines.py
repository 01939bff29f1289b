"""bench/two_machines.py: the host side on CPU 0 and the client side on CPU 1, from
their start (so thread counts taken from the affinity see one core)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from two_machines import (  # noqa: E402 - bench/ is not a package
    CLIENT_CPU,
    HOST_CPU,
    on_cpu,
    pin_thread,
    split,
    taskset,
    unavailable_reason,
)

AFFINITY = [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"]

needs_both = pytest.mark.skipif(bool(unavailable_reason()), reason=unavailable_reason() or "-")


def test_a_pinned_name_is_split_from_its_pipeline():
    assert split("gstreamer@pinned") == ("gstreamer", True)
    assert split("rootstream-gil1") == ("rootstream-gil1", False)


@needs_both
def test_taskset_starts_a_process_on_one_cpu_and_none_leaves_it_free():
    pinned = subprocess.run(taskset(CLIENT_CPU, AFFINITY), capture_output=True, text=True,
                            check=True)
    assert pinned.stdout.strip() == f"[{CLIENT_CPU}]"
    free = subprocess.run(taskset(None, AFFINITY), capture_output=True, text=True, check=True)
    assert free.stdout.strip() == str(sorted(os.sched_getaffinity(0)))


@needs_both
def test_processes_started_on_a_cpu_keep_it_and_the_starter_gets_its_own_back():
    before = os.sched_getaffinity(0)
    with on_cpu(HOST_CPU):
        child = subprocess.run(AFFINITY, capture_output=True, text=True, check=True)
    assert child.stdout.strip() == f"[{HOST_CPU}]"
    assert os.sched_getaffinity(0) == before


@needs_both
def test_a_thread_is_moved_alone():
    moved, ready, done = {}, threading.Event(), threading.Event()

    def body():
        ready.set()
        done.wait(5)
        moved["cpus"] = os.sched_getaffinity(0)

    thread = threading.Thread(target=body)
    thread.start()
    ready.wait(5)
    pin_thread(thread.native_id, CLIENT_CPU)
    done.set()
    thread.join(5)
    assert moved["cpus"] == {CLIENT_CPU}
    assert os.sched_getaffinity(0) != {CLIENT_CPU}  # this thread was not moved
