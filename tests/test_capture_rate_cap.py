"""ChangeRateCap: change-driven grabs held to about ``fps`` a second, without a
lag that outlives the reason for it."""

from __future__ import annotations

import pytest

from rootstream.capture.base import ChangeRateCap

SOURCE_PERIOD = 10_000_000  # a source changing 100 times a second


class FakeClock:
    """A monotonic clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 1_000_000_000

    def __call__(self) -> int:
        return self.now

    def sleep_until(self, t_ns: int) -> None:
        self.now = max(self.now, t_ns)


def grab_changes(cap, clock: FakeClock, change_times: list[int]) -> list[int]:
    """The time each change is grabbed at, for changes arriving at these times."""
    grabbed = []
    for t in change_times:
        clock.sleep_until(t)  # the change arrives
        slot = cap.wait(None)
        clock.sleep_until(slot)
        cap.taken(slot, clock.now)
        grabbed.append(slot)
    return grabbed


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cap(clock) -> ChangeRateCap:
    return ChangeRateCap(100, clock=clock, sleep_until=clock.sleep_until)


def test_the_rate_has_a_little_slack_over_fps(cap):
    assert cap.period_ns == round(1e9 / (100 * (1 + ChangeRateCap.RATE_SLACK)))
    assert 0.9 * SOURCE_PERIOD < cap.period_ns < SOURCE_PERIOD


def test_a_change_storm_is_held_to_the_rate(cap, clock):
    start = clock.now
    grabbed = grab_changes(cap, clock, [start] * 50)  # every grab finds a change waiting
    # The first two go at once (BURST: two frames of credit), then one per
    # period of the cap: never faster.
    assert grabbed[:3] == [start, start, start + cap.period_ns]
    gaps = [b - a for a, b in zip(grabbed[1:], grabbed[2:], strict=False)]
    assert all(gap == pytest.approx(cap.period_ns, abs=2) for gap in gaps)


def test_a_source_at_the_cap_rate_with_jitter_is_grabbed_without_waiting(cap, clock):
    start = clock.now
    jitter = [0, 2, -2, 1, -1, 2, -2, 0] * 10  # ms, up to a fifth of a period
    changes = [start + i * SOURCE_PERIOD + j * 1_000_000 for i, j in enumerate(jitter)]
    assert grab_changes(cap, clock, changes) == changes


def test_a_lag_from_extra_grabs_does_not_last(cap, clock):
    """Two extra grabs (a keyframe request, say) drain the budget, so the
    source's next changes wait; the slack wins it back and the waits stop.
    Without slack each later change would wait the same, for ever."""
    start = clock.now
    changes = [start + i * SOURCE_PERIOD for i in range(200)]
    grab_changes(cap, clock, changes[:10])
    grab_changes(cap, clock, [clock.now + 1, clock.now + 2])  # the extra grabs
    grabbed = grab_changes(cap, clock, changes[10:])
    waits = [g - c for g, c in zip(grabbed, changes[10:], strict=True)]
    assert waits[0] > SOURCE_PERIOD // 2  # the lag is there at first...
    assert waits[-100:] == [0] * 100  # ...and gone within a second of frames


def test_a_still_screen_keeps_credit_for_two_changes_and_no_more(cap, clock):
    start = clock.now
    grab_changes(cap, clock, [start])
    # A still screen for a second, then a burst: 2 frames of credit, no more.
    later = start + 1_000_000_000
    grabbed = grab_changes(cap, clock, [later] * 3)
    assert grabbed[:2] == [later, later]
    assert grabbed[2] == pytest.approx(later + cap.period_ns, abs=2)


def test_a_change_between_two_frames_of_motion_goes_at_once(clock):
    """A source at the cap's rate, plus one change between two of its frames."""
    cap = ChangeRateCap(60, clock=clock, sleep_until=clock.sleep_until)
    period = round(1e9 / 60)
    start = clock.now + 10**9  # the credit is full after a still second
    motion = [start + i * period for i in range(30)]
    between = motion[20] + period // 3
    grabbed = grab_changes(cap, clock, sorted([*motion, between]))
    assert grabbed[21] == between  # not held for the next slot
    waits = [g - want for g, want in zip(grabbed, sorted([*motion, between]), strict=True)]
    assert max(waits[22:]) == 0  # and the motion after it is not made to wait


def test_a_deadline_before_the_rate_allows_returns_none(cap, clock):
    grab_changes(cap, clock, [clock.now] * 2)  # credit spent: the next in a period
    deadline = clock.now + cap.period_ns // 4
    assert cap.wait(deadline) is None
    assert clock.now == deadline
    assert cap.wait(None) == pytest.approx(deadline + cap.period_ns * 3 // 4, abs=2)


def test_real_clock_by_default():
    cap = ChangeRateCap(1000)
    first = cap.wait(None)
    cap.taken(first, first)
    assert cap.wait(None) >= first
