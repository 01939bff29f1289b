"""Repeated sessions leave nothing behind: descriptors, threads and Python heap.

A host that stays up for an evening serves many sessions; whatever one
session leaves behind adds up.  What these tests assert does not depend on
the machine's load: counts of open file descriptors and threads (exact, once
the session's threads have ended), and the Python heap's growth by
file:line over repeated sessions (tracemalloc), which counts objects kept,
not time.  Memory slopes over minutes live in bench/soak.py.

Both ends run in this process on loopback, encrypted as by default, with
sound (the host's test signal, played by SDL's disk driver into a file).
"""

from __future__ import annotations

import gc
import os
import threading
import time
import tracemalloc

import pytest

from rootstream.client import Client, ClientOptions
from rootstream.crypto.gate import HostGate
from rootstream.crypto.identity import Identity
from rootstream.crypto.trust import TrustStore
from rootstream.host import Host, HostOptions

pytestmark = pytest.mark.slow

SESSION_S = 1.5
# Python heap kept by our own code over REPEATS sessions after two warm-up
# ones.  Measured: about 2 kB (datagrams and frames in flight when the
# snapshot is taken); one session's sound timeline or one picture kept per
# session would be hundreds of kB.  On a loaded machine numpy's C code, run
# from the sound device's fill on SDL's thread, also fills a pool of 56-byte
# blocks that tracemalloc charges to the line of ours that first called it
# (playback.py's copy to the device, or stretch.py's sliding window): 6.6 kB
# after 2 sessions with both cores busy, 12.7 kB after 10, flattening out,
# none of it reachable from Python objects.  The bounds leave room for that
# pool and still catch 6 kB kept per session at one line, 16 kB in all.
REPEATS = 4
HEAP_BOUND = 64 * 1024
LINE_BOUND = 24 * 1024


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def native_threads() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("Threads:"))


def counts() -> tuple[int, int, int]:
    return open_fds(), native_threads(), threading.active_count()


def settle(expected: tuple[int, int, int], timeout: float = 5.0) -> tuple[int, int, int]:
    """The counts once they equal ``expected``, or as they stand at the timeout
    (threads of an ended session finish a little after it)."""
    deadline = time.monotonic() + timeout
    now = counts()
    while now != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        now = counts()
    return now


def quiet_counts() -> tuple[int, int, int]:
    """The counts after a second with nothing running (stragglers have ended)."""
    time.sleep(1.0)
    return counts()


@pytest.fixture
def sound_to_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SDL_AUDIODRIVER", "disk")
    monkeypatch.setenv("SDL_DISKAUDIOFILE", str(tmp_path / "sound.raw"))


class RunningHost:
    def __init__(self, port: int):
        self.host = Host(HostOptions(source="test", size=(480, 270), fps=30, bitrate=1_000_000,
                                     bind="127.0.0.1", port=port, stats_interval=60,
                                     audio="test", input="none"), log=lambda line: None)
        self.serving = threading.Thread(target=self.host.serve, name="test-host")
        self.serving.start()
        self.port = port

    def session(self) -> None:
        lines: list[str] = []
        client = Client(ClientOptions(host=("127.0.0.1", self.port), present="null",
                                      seconds=SESSION_S, stats_interval=60),
                        log=lines.append)
        result = client.run()
        assert result.frames_presented > 0, lines
        assert result.reason == f"ran {SESSION_S:g} s", lines

    def close(self) -> None:
        self.host.stop()
        self.serving.join(10)
        self.host.close()
        assert not self.serving.is_alive()


def test_descriptors_and_threads_come_back_after_every_session(udp_port, sound_to_file):
    # One whole life first: imports, SDL and codec libraries keep what they
    # open once per process, which is not per session.
    warm = RunningHost(udp_port)
    warm.session()
    warm.close()
    before = quiet_counts()

    running = RunningHost(udp_port)
    try:
        running.session()
        between = quiet_counts()
        for n in range(3):
            running.session()
            assert settle(between) == between, f"after session {n + 2}"
    finally:
        running.close()
    assert settle(before) == before, "after the host closed"


def test_repeated_sessions_keep_no_python_heap(udp_port, sound_to_file):
    running = RunningHost(udp_port)
    tracemalloc.start(1)
    try:
        for _ in range(2):
            running.session()
        gc.collect()
        reference = tracemalloc.take_snapshot()
        for _ in range(REPEATS):
            running.session()
        gc.collect()
        later = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
        running.close()
    ours = [tracemalloc.Filter(True, "*/rootstream/*")]
    grown = [s for s in later.filter_traces(ours).compare_to(reference.filter_traces(ours),
                                                              "lineno") if s.size_diff > 0]
    grown.sort(key=lambda s: s.size_diff, reverse=True)
    where = [f"{s.traceback[0].filename}:{s.traceback[0].lineno} {s.size_diff:+d} B"
             for s in grown[:10]]
    assert sum(s.size_diff for s in grown) < HEAP_BOUND, where
    assert all(s.size_diff < LINE_BOUND for s in grown), where


def test_the_gate_forgets_the_ports_of_clients_gone_quiet(tmp_path):
    # Each session comes from a new client port; the handshake rate limit
    # kept every one of them while the host stayed up.
    gate = HostGate(Identity.load_or_create(tmp_path), TrustStore.open(tmp_path),
                    log=lambda line: None)
    for session in range(100):
        assert gate._allow_init(("127.0.0.1", 40000 + session), now=session * 60.0)
    assert len(gate._inits) == 1
