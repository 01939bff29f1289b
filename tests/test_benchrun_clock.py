"""The clock offset estimator, on exchanges made up with a known offset and delays."""

from __future__ import annotations

import random

import pytest

from rootstream.benchrun.clock import Exchange, OffsetEstimator


def exchanges(offset_ns: int, delays, *, start_ns: int = 10**12, turnaround_ns: int = 30_000):
    """(t0, t1, t2, t3) for each (forward, backward) one-way delay pair."""
    t0 = start_ns
    for forward, backward in delays:
        t1 = t0 + forward + offset_ns
        t2 = t1 + turnaround_ns
        t3 = t2 + backward - offset_ns
        yield t0, t1, t2, t3
        t0 += 100_000_000


def test_one_exchange_gives_the_ntp_formula_and_half_the_rtt_as_bound():
    estimator = OffsetEstimator()
    (t,) = exchanges(5_000_000, [(400_000, 200_000)])
    estimator.add(*t)
    estimate = estimator.estimate()
    # rtt = 0.6 ms; NTP says offset + (d1 - d2) / 2 = 5 ms + 0.1 ms.
    assert estimate.min_rtt_ns == 600_000
    assert estimate.offset_ns == pytest.approx(5_100_000)
    assert estimate.error_ns == pytest.approx(300_000)
    assert abs(estimate.offset_ns - 5_000_000) <= estimate.error_ns


@pytest.mark.parametrize("offset_ns", [0, 3_141_592_653, -987_654_321_000])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_asymmetric_random_delays_never_push_the_truth_outside_the_bound(offset_ns, seed):
    rng = random.Random(seed)
    # A slow uplink: the forward leg is always longer, with heavy-tailed queueing.
    delays = [(800_000 + int(rng.expovariate(1 / 2_000_000)),
               150_000 + int(rng.expovariate(1 / 300_000))) for _ in range(200)]
    estimator = OffsetEstimator()
    for t in exchanges(offset_ns, delays):
        estimator.add(*t)
    estimate = estimator.estimate()
    assert abs(estimate.offset_ns - offset_ns) <= estimate.error_ns
    assert estimate.error_ns <= estimate.min_rtt_ns / 2
    assert estimate.exchanges == 200 and estimate.used == estimator.best


def test_more_small_round_trips_tighten_the_bound():
    # Two exchanges, each asymmetric the other way: their intervals overlap
    # only near the truth, so the intersection is narrower than either.
    estimator = OffsetEstimator()
    for t in exchanges(1_000_000, [(500_000, 100_000), (100_000, 500_000)]):
        estimator.add(*t)
    estimate = estimator.estimate()
    assert estimate.error_ns < estimate.min_rtt_ns / 2
    assert estimate.offset_ns == pytest.approx(1_000_000)
    assert estimate.error_ns == pytest.approx(100_000)


def test_intervals_that_do_not_meet_fall_back_to_the_smallest_round_trip():
    # The host's clock jumped by 50 ms between two probes: no offset fits both.
    estimator = OffsetEstimator()
    first = next(exchanges(0, [(100_000, 100_000)]))
    second = next(exchanges(50_000_000, [(150_000, 150_000)], start_ns=2 * 10**12))
    estimator.add(*first)
    estimator.add(*second)
    estimate = estimator.estimate()
    assert estimate.used == 1
    assert estimate.offset_ns == pytest.approx(0)
    assert estimate.error_ns == pytest.approx(100_000)


def test_impossible_stamps_are_rejected_and_counted():
    estimator = OffsetEstimator()
    assert estimator.estimate() is None
    assert estimator.add(100, 50, 40, 200) is None  # the host's pong left before the ping came
    assert estimator.add(100, 0, 500, 300) is None  # the host held it longer than the round trip
    assert estimator.add(300, 0, 0, 200) is None  # answered before it was asked
    assert estimator.rejected == 3 and estimator.estimate() is None
    assert isinstance(estimator.add(100, 150, 160, 200), Exchange)
    assert list(estimator.rtts_ns()) == [90]


def test_best_must_be_positive():
    with pytest.raises(ValueError):
        OffsetEstimator(best=0)
