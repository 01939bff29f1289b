"""RecentList: the client's per-frame records stay a list, and stop growing."""

from __future__ import annotations

from rootstream.recent import RecentList


def test_keeps_every_value_until_twice_keep_then_the_most_recent():
    values = RecentList(keep=4)
    for n in range(7):
        values.append(n)
    assert values == list(range(7)) and values[1:3] == [1, 2]
    values.append(7)  # the eighth: trimmed back to the last four
    assert values == [4, 5, 6, 7]
    for n in range(8, 1000):
        values.append(n)
        assert 4 <= len(values) < 8
    assert values[-1] == 999 and values == sorted(values)
