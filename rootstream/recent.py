"""The most recent integers, for per-frame records that tests read back.

The client keeps what it showed (frame numbers read from the test pattern,
present times, A/V offsets) so tests and benchmarks can check order and
freezes.  Kept whole, those lists grew with every frame for as long as a
session lasted (about 4 kB/s at 60 fps: most of the client's RSS growth in
an evening-long soak).  RecentList keeps at least the last ``keep`` values
and never more than twice that, trimming once per ``keep`` appends so an
append stays O(1) amortised.

The values live in an int64 array, not as Python ints: as lists, the
client's records kept some 8,000 ints alive, 120 new ones a second each
living half a minute to a minute among frames and datagrams that live
milliseconds.  With them (and the sound timeline's tuples) out of
pymalloc, its pools stopped creeping in the pair_input soak, where before
they grew with no more objects alive (docs/SOAK.md, fourth pass).  It
reads like a list: ``len``, indexing, iteration, and slices that are lists.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

# Half a minute at 60 fps: the tests and benchmarks that read them run shorter sessions.
KEEP = 2048


class RecentList(Sequence):
    """The last ``keep`` to ``2 * keep`` integers appended, oldest first."""

    def __init__(self, keep: int = KEEP):
        self.keep = keep
        self._values = array("q")  # signed 64-bit: nanosecond times, frame numbers, offsets

    def append(self, value: int) -> None:
        self._values.append(value)
        if len(self._values) >= 2 * self.keep:
            del self._values[:-self.keep]

    def __len__(self) -> int:
        return len(self._values)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self._values[index].tolist()
        return self._values[index]

    def __iter__(self):
        return iter(self._values)

    def __eq__(self, other) -> bool:
        if isinstance(other, (list, tuple, RecentList)):
            return list(self._values) == list(other)
        return NotImplemented

    __hash__ = None  # mutable, like a list

    def __repr__(self) -> str:
        return f"RecentList({self._values.tolist()!r})"
