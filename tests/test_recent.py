"""RecentList: the client's per-frame records stay a list, and stop growing."""

from __future__ import annotations

import gc

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


def test_the_values_are_not_kept_as_python_objects():
    # 120 ints a second living half a minute or more, among objects that live
    # milliseconds, kept pymalloc's pools partly used (docs/SOAK.md, fourth
    # pass): the values live in an array, made into ints only when read.
    values = RecentList(keep=2048)
    for n in range(4000):
        values.append(10**12 + n)  # nanosecond-sized: no small-int cache
    kept = [child for child in gc.get_referents(values) if not isinstance(child, type)]
    assert len(values) == 4000
    assert len(kept) < 5, f"{len(kept)} objects for {len(values)} values"
    assert values[-1] == 10**12 + 3999 and values[:2] == [10**12, 10**12 + 1]
