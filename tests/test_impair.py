"""The impairment model datagram by datagram, and the relay on real loopback sockets."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rootstream.errors import NetworkError
from rootstream.testing.impair import GilbertElliott, Impairment, ImpairmentModel, LossyRelay

MS = 1_000_000


def feed(model: ImpairmentModel, count: int, gap_ns: int = MS, size: int = 100):
    """Send ``count`` numbered datagrams ``gap_ns`` apart; return (arrival, outputs) pairs."""
    results = []
    for number in range(count):
        datagram = number.to_bytes(4, "big") + bytes(size - 4)
        now = 1_000 * MS + number * gap_ns
        results.append((now, model.process(datagram, now)))
    return results


def test_no_impairment_passes_everything_through_at_once():
    model = ImpairmentModel()
    for now, out in feed(model, 50):
        assert len(out) == 1 and out[0][0] == now
    assert model.counters.received == model.counters.forwarded == 50
    assert model.counters.dropped == 0


def test_random_loss_rate_is_close_to_the_setting():
    model = ImpairmentModel(Impairment(loss=0.1), seed=1)
    feed(model, 20_000)
    share = model.counters.lost / 20_000
    assert 0.09 < share < 0.11
    assert model.counters.forwarded == 20_000 - model.counters.lost


def test_same_seed_same_losses_and_other_seed_other_losses():
    def lost_numbers(seed):
        model = ImpairmentModel(Impairment(loss=0.2, jitter_ms=3, duplicate=0.1), seed=seed)
        return [out for _, out in feed(model, 500)]

    assert lost_numbers(5) == lost_numbers(5)
    assert lost_numbers(5) != lost_numbers(6)


def loss_runs(results) -> list[int]:
    runs, current = [], 0
    for _, out in results:
        if out:
            if current:
                runs.append(current)
            current = 0
        else:
            current += 1
    return runs


def test_gilbert_elliott_loses_in_bursts_at_the_expected_rate():
    burst = GilbertElliott(p_good_to_bad=0.01, p_bad_to_good=0.25)
    assert burst.mean_loss == pytest.approx(0.01 / 0.26)
    model = ImpairmentModel(Impairment(burst=burst), seed=3)
    results = feed(model, 60_000)
    share = model.counters.lost / 60_000
    assert 0.75 * burst.mean_loss < share < 1.25 * burst.mean_loss
    runs = loss_runs(results)
    mean_run = sum(runs) / len(runs)
    # Geometric runs with p_bad_to_good = 0.25 last 4 datagrams on average;
    # independent loss at the same rate would give runs of about 1.04.
    assert 3.2 < mean_run < 4.8
    independent = ImpairmentModel(Impairment(loss=burst.mean_loss), seed=3)
    runs = loss_runs(feed(independent, 60_000))
    assert sum(runs) / len(runs) < 1.2


def test_gilbert_elliott_partial_loss_in_each_state():
    burst = GilbertElliott(0.05, 0.2, loss_in_bad=0.5, loss_in_good=0.02)
    model = ImpairmentModel(Impairment(burst=burst), seed=9)
    feed(model, 60_000)
    assert model.counters.lost / 60_000 == pytest.approx(burst.mean_loss, rel=0.15)


def test_reorder_really_reorders():
    model = ImpairmentModel(Impairment(reorder=0.2, reorder_delay_ms=5), seed=2)
    results = feed(model, 2_000)
    held = [(now, out[0][0]) for now, out in results if out[0][0] != now]
    assert len(held) == model.counters.reordered
    assert 0.17 < len(held) / 2_000 < 0.23
    assert all(release == now + 5 * MS for now, release in held)
    arrival_order = [out[0][1] for _, out in results]
    release_order = [d for _, d in sorted(o for _, out in results for o in out)]
    assert sorted(arrival_order) == sorted(release_order)
    inversions = sum(
        1 for a, b in zip(release_order, release_order[1:], strict=False) if a[:4] > b[:4]
    )
    assert inversions > 200


def test_duplication_duplicates():
    model = ImpairmentModel(Impairment(duplicate=0.1), seed=4)
    results = feed(model, 10_000)
    doubled = [out for _, out in results if len(out) == 2]
    assert len(doubled) == model.counters.duplicated
    assert 0.09 < len(doubled) / 10_000 < 0.11
    assert all(out[0] == out[1] for out in doubled)
    assert model.counters.forwarded == 10_000 + len(doubled)


def test_delay_and_jitter_stay_in_their_window():
    model = ImpairmentModel(Impairment(delay_ms=20, jitter_ms=5), seed=8)
    offsets = [out[0][0] - now for now, out in feed(model, 5_000)]
    assert min(offsets) >= 15 * MS and max(offsets) <= 25 * MS
    assert sum(offsets) / len(offsets) == pytest.approx(20 * MS, rel=0.02)


def test_jitter_never_releases_before_arrival():
    model = ImpairmentModel(Impairment(delay_ms=1, jitter_ms=10), seed=8)
    assert all(out[0][0] >= now for now, out in feed(model, 2_000))


def test_rate_cap_paces_and_tail_drops_when_its_queue_is_full():
    # 8 Mbit/s: a 1000-byte datagram takes exactly 1 ms on the wire.
    model = ImpairmentModel(Impairment(rate_bps=8_000_000, queue_bytes=10_000))
    start = 1_000 * MS
    releases = [model.process(bytes(1000), start) for _ in range(30)]
    accepted = [out[0][0] for out in releases if out]
    assert len(accepted) == 10  # a 10 000-byte buffer holds ten of them
    assert accepted == [start + (i + 1) * MS for i in range(10)]
    assert model.counters.overflowed == 20
    # Once the queue has drained, the link accepts again at the same pace.
    later = start + 50 * MS
    assert model.process(bytes(1000), later) == [(later + MS, bytes(1000))]


def test_rate_cap_without_a_buffer_still_sends_on_an_idle_link():
    model = ImpairmentModel(Impairment(rate_bps=8_000_000, queue_bytes=0))
    assert model.process(bytes(1000), 0) == [(MS, bytes(1000))]
    assert model.process(bytes(1000), MS // 2) == []
    assert model.process(bytes(1000), MS) == [(2 * MS, bytes(1000))]


def test_rate_cap_with_steady_traffic_below_the_rate_adds_no_queueing():
    model = ImpairmentModel(Impairment(rate_bps=8_000_000))
    for now, out in feed(model, 100, gap_ns=2 * MS, size=1000):
        assert out == [(now + MS, out[0][1])]


@pytest.mark.parametrize(
    "settings",
    [
        {"loss": 1.5},
        {"duplicate": -0.1},
        {"reorder": 2},
        {"delay_ms": -1},
        {"rate_bps": 0},
        {"queue_bytes": -5},
    ],
)
def test_bad_settings_raise_network_error(settings):
    with pytest.raises(NetworkError, match="^impairment setting is out of range$"):
        Impairment(**settings)


def test_loss_and_burst_together_is_an_error():
    with pytest.raises(NetworkError, match="^impairment has both loss and burst$"):
        Impairment(loss=0.1, burst=GilbertElliott(0.1, 0.5))
    with pytest.raises(NetworkError, match="^impairment setting is out of range$"):
        GilbertElliott(0.1, 0.0)


probability = st.floats(0.0, 1.0)


def impairments(**loss_model):
    return st.builds(
        Impairment,
        reorder=probability,
        duplicate=probability,
        delay_ms=st.floats(0, 50),
        jitter_ms=st.floats(0, 50),
        rate_bps=st.none() | st.integers(10_000, 10**9),
        queue_bytes=st.integers(0, 100_000),
        **loss_model,
    )


any_impairment = impairments(loss=probability) | impairments(
    burst=st.builds(GilbertElliott, probability, st.floats(0.01, 1.0), probability, probability)
)


@settings(max_examples=60, deadline=None)
@given(
    impairment=any_impairment,
    arrivals=st.lists(st.tuples(st.integers(0, 5 * MS), st.integers(0, 1500)), max_size=60),
    seed=st.integers(0, 1000),
)
def test_any_settings_keep_counters_consistent_and_never_release_early(impairment, arrivals, seed):
    model = ImpairmentModel(impairment, seed=seed)
    now = 0
    released = 0
    for gap, size in arrivals:
        now += gap
        datagram = bytes(size)
        out = model.process(datagram, now)
        assert all(release >= now and copy is datagram for release, copy in out)
        released += len(out)
    counters = model.counters
    assert counters.received == len(arrivals)
    assert counters.forwarded == released
    assert counters.received == counters.forwarded - counters.duplicated + counters.dropped


# --- the relay on real sockets ------------------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def endpoints():
    """A bound client socket and a bound host socket on loopback."""
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    host = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    host.bind(("127.0.0.1", 0))
    client.settimeout(2)
    host.settimeout(2)
    try:
        yield client, host
    finally:
        client.close()
        host.close()


def test_relay_forwards_both_ways_and_stops_cleanly(endpoints):
    client, host = endpoints
    threads_before = threading.active_count()
    fds_before = open_fds()
    relay = LossyRelay(upstream=host.getsockname()).start()
    try:
        for number in range(20):
            client.sendto(b"ping %d" % number, relay.address)
            datagram, relay_side = host.recvfrom(2048)
            assert datagram == b"ping %d" % number
            host.sendto(b"pong %d" % number, relay_side)
            datagram, source = client.recvfrom(2048)
            assert datagram == b"pong %d" % number
            assert source == relay.address
        assert relay.client == client.getsockname()
        assert relay.counters["to_host"].forwarded == 20
        assert relay.counters["to_client"].forwarded == 20
    finally:
        relay.stop()
    assert threading.active_count() == threads_before
    assert open_fds() == fds_before
    relay.stop()  # a second stop is harmless
    with pytest.raises(NetworkError, match="^a relay starts once$"):
        relay.start()


def test_relay_applies_each_direction_separately(endpoints):
    client, host = endpoints
    with LossyRelay(
        upstream=host.getsockname(),
        to_host=Impairment(duplicate=1.0),
        to_client=Impairment(loss=1.0),
    ) as relay:
        client.sendto(b"hello", relay.address)
        first, relay_side = host.recvfrom(2048)
        second, _ = host.recvfrom(2048)
        assert first == second == b"hello"
        host.sendto(b"reply", relay_side)
        client.settimeout(0.2)
        with pytest.raises(TimeoutError):
            client.recvfrom(2048)
        assert relay.counters["to_client"].lost == 1
        assert relay.counters["to_host"].duplicated == 1


def test_relay_delays_by_at_least_the_setting(endpoints):
    client, host = endpoints
    with LossyRelay(upstream=host.getsockname(), delay_ms=30) as relay:
        sent = time.monotonic()
        client.sendto(b"late", relay.address)
        assert host.recvfrom(2048)[0] == b"late"
        assert time.monotonic() - sent >= 0.03


def test_relay_loses_about_the_set_share_with_a_seed(endpoints):
    client, host = endpoints
    host.settimeout(0.3)
    host.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    with LossyRelay(upstream=host.getsockname(), loss=0.25, seed=12) as relay:
        for number in range(400):
            client.sendto(number.to_bytes(2, "big"), relay.address)
            if number % 50 == 49:
                time.sleep(0.005)  # stay well inside the socket buffers
        received = set()
        try:
            while len(received) < 400:
                received.add(host.recvfrom(2048)[0])
        except TimeoutError:
            pass
        counters = relay.counters["to_host"]
    assert len(received) == counters.forwarded == 400 - counters.lost
    assert 0.18 < counters.lost / 400 < 0.32


def test_relay_paces_to_its_rate_cap(endpoints):
    client, host = endpoints
    # 8 Mbit/s: 1000-byte datagrams leave 1 ms apart, so 40 take at least 40 ms.
    with LossyRelay(upstream=host.getsockname(), rate_bps=8_000_000) as relay:
        sent = time.monotonic()
        for _ in range(40):
            client.sendto(bytes(1000), relay.address)
        for _ in range(40):
            host.recvfrom(2048)
        assert time.monotonic() - sent >= 0.04
        assert relay.counters["to_host"].forwarded == 40


def test_relay_ignores_strangers_on_the_host_side(endpoints):
    client, host = endpoints
    with LossyRelay(upstream=host.getsockname()) as relay:
        client.sendto(b"hello", relay.address)
        _, relay_side = host.recvfrom(2048)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.sendto(b"spoof", relay_side)
            host.sendto(b"real", relay_side)
            assert client.recvfrom(2048)[0] == b"real"
        assert relay.foreign == 1


def test_relay_needs_an_upstream_and_a_usable_address():
    with pytest.raises(NetworkError, match="^the relay needs an upstream address$"):
        LossyRelay()
    fds_before = open_fds()
    with pytest.raises(NetworkError, match="^could not open the relay sockets$"):
        LossyRelay(listen=("192.0.2.1", 0), upstream=("127.0.0.1", 9))
    assert open_fds() == fds_before
