"""Network namespaces joined by a veth pair: a datagram crosses, tbf shapes, nft drops."""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import pytest

from rootstream.errors import NetworkError
from rootstream.testing.netns import (
    NamespacePair,
    cleanup_leftovers,
    list_namespaces,
    probe_netns,
)

_missing = [f"{name}: {reason}" for name, ok, reason in probe_netns() if not ok]
needs_netns = pytest.mark.skipif(bool(_missing), reason="; ".join(_missing))

PORT = 47000


@pytest.fixture
def pair():
    with NamespacePair(subnet=7) as namespaces:
        yield namespaces


def receiver(pair, port=PORT, buffer=1 << 22):
    sock = pair.b.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
    sock.bind((pair.b.address, port))
    sock.settimeout(2)
    return sock


@needs_netns
def test_a_datagram_crosses_the_veth_pair_and_stays_inside(pair):
    inbox = receiver(pair)
    sender = pair.a.socket()
    try:
        sender.sendto(b"across the wire", (pair.b.address, PORT))
        datagram, source = inbox.recvfrom(2048)
        assert datagram == b"across the wire"
        assert source[0] == pair.a.address
        inbox.sendto(b"and back", source)
        sender.settimeout(2)
        assert sender.recvfrom(2048) == (b"and back", (pair.b.address, PORT))
    finally:
        inbox.close()
        sender.close()
    # The test subnet exists only inside the namespaces, never on the host.
    host_addresses = subprocess.run(
        ["ip", "-o", "addr"], capture_output=True, text=True, check=True
    ).stdout
    assert "10.213." not in host_addresses
    inside = pair.a.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    assert f"{pair.a.address}/24" in inside


def measure_throughput(pair, seconds: float, size: int = 1200) -> float:
    """Send as fast as possible from a to b; return the payload bits/s b received."""
    inbox = receiver(pair)
    inbox.settimeout(0.3)
    sender = pair.a.socket()
    received = []
    stop = threading.Event()

    def drain():
        while True:
            try:
                received.append((time.monotonic(), len(inbox.recv(4096))))
            except TimeoutError:
                if stop.is_set():
                    return

    thread = threading.Thread(target=drain)
    thread.start()
    payload = bytes(size)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            try:
                sender.sendto(payload, (pair.b.address, PORT))
            except OSError:
                time.sleep(0.0005)  # qdisc full: back off as a real sender would
    finally:
        stop.set()
        thread.join()
        inbox.close()
        sender.close()
    # Skip the first 20 % so the bucket's initial burst does not count.
    steady = received[len(received) // 5 :]
    elapsed = steady[-1][0] - steady[0][0]
    return sum(n for _, n in steady[1:]) * 8 / elapsed


@needs_netns
def test_tbf_caps_throughput(pair):
    pair.a.limit_rate("20mbit", burst="32kb", latency="50ms")
    rate = measure_throughput(pair, seconds=1.0)
    # tbf counts Ethernet, IP and UDP headers too: 1200 of 1242 bytes are payload.
    assert 0.75 * 20e6 * 1200 / 1242 < rate < 1.1 * 20e6


@needs_netns
def test_nft_drops_about_the_set_share(pair):
    pair.b.drop_randomly(30)
    inbox = receiver(pair)
    sender = pair.a.socket()
    count = 3000
    got = 0
    try:
        for number in range(count):
            sender.sendto(number.to_bytes(4, "big"), (pair.b.address, PORT))
            if number % 100 == 99:
                # Drain as we go: the receive buffer must not be what drops.
                got += drain(inbox, wait=0.005)
        got += drain(inbox, wait=0.2)
    finally:
        inbox.close()
        sender.close()
    # Binomial sd is 0.8 % of 3000; the bounds are over five sd away.
    assert 0.65 < got / count < 0.75
    pair.b.clear_impairments()
    assert (
        "rootstream_impair"
        not in pair.b.run(
            ["nft", "list", "tables"], capture_output=True, text=True, check=True
        ).stdout
    )


def drain(sock, wait: float) -> int:
    """Read every datagram that arrives until ``wait`` seconds pass without one."""
    got = 0
    sock.settimeout(wait)
    while True:
        try:
            sock.recv(64)
        except TimeoutError:
            return got
        got += 1


@needs_netns
def test_drop_percentage_is_checked(pair):
    with pytest.raises(NetworkError, match="^drop percentage is out of range$"):
        pair.a.drop_randomly(101)


@needs_netns
def test_close_removes_everything_even_after_an_error():
    pair = NamespacePair(subnet=8)
    with pytest.raises(RuntimeError), pair:
        assert pair.a.name in list_namespaces()
        raise RuntimeError("test body failed")
    assert pair.a.name not in list_namespaces()
    assert pair.b.name not in list_namespaces()


@needs_netns
def test_cleanup_removes_leftovers_of_dead_runs_only(pair):
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = f"rsnet-{dead.pid}-0-a"
    subprocess.run(["ip", "netns", "add", leftover], check=True)
    try:
        removed = cleanup_leftovers()
        assert leftover in removed
        assert pair.a.name in list_namespaces() and pair.b.name in list_namespaces()
    finally:
        subprocess.run(["ip", "netns", "del", leftover], capture_output=True)
    assert leftover not in list_namespaces()


def test_bad_subnet_is_rejected():
    with pytest.raises(NetworkError, match="^namespace subnet is out of range$"):
        NamespacePair(subnet=300)


def test_probe_names_each_requirement_with_a_reason():
    results = probe_netns()
    assert [name for name, _, _ in results] == ["root", "ip", "tc", "nft"]
    for _, ok, reason in results:
        assert isinstance(ok, bool) and reason
