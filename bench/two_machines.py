"""The two-machine model: host side on one core, client side on the other.

Users run the host and the client on separate machines; on this 2-core bench
machine both sides share both cores, so a slow change may be the client's
decode preempted by the host's x264 (issue 15's traces: what grows in the
tail is CPU stretched by contention).  A pipeline named ``NAME@pinned``
(bench_glass.py ``--two-machines``) runs with every host-side process (its
Xvfb, the painter, rootstream's host or GStreamer's sender) on HOST_CPU and
every client-side one (its Xvfb, the watcher thread, rootstream's client or
GStreamer's receiver) on CLIENT_CPU, pinned from their start so that thread
counts chosen from the affinity (x264's and FFmpeg's "auto") see one core,
as on a one-core machine.  It is reported beside the unpinned figures, never
alone: the machine the lead measures on is the unpinned one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

PINNED = "@pinned"
HOST_CPU, CLIENT_CPU = 0, 1


def split(pipeline: str) -> tuple[str, bool]:
    """``NAME@pinned`` -> (NAME, True); anything else -> (pipeline, False)."""
    if pipeline.endswith(PINNED):
        return pipeline[:-len(PINNED)], True
    return pipeline, False


def unavailable_reason() -> str:
    """Why the model cannot run here ("" when it can): it needs both CPUs."""
    cpus = os.sched_getaffinity(0)
    missing = {HOST_CPU, CLIENT_CPU} - cpus
    return f"CPUs {sorted(missing)} are not ours (we may use {sorted(cpus)})" if missing else ""


def taskset(cpu: int | None, command: list[str]) -> list[str]:
    """``command`` started on ``cpu`` alone (None: anywhere)."""
    return command if cpu is None else ["taskset", "-c", str(cpu), *command]


@contextmanager
def on_cpu(cpu: int | None) -> Iterator[None]:
    """Processes this thread starts meanwhile run on ``cpu`` (they inherit its mask)."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def pin_thread(native_id: int | None, cpu: int | None) -> None:
    """One thread of ours (the watcher) onto ``cpu``."""
    if cpu is not None and native_id is not None:
        os.sched_setaffinity(native_id, {cpu})
