"""A list of the most recent values, for per-frame records that tests read back.

The client keeps what it showed (frame numbers read from the test pattern,
present times, A/V offsets) so tests and benchmarks can check order and
freezes.  Kept whole, those lists grew with every frame for as long as a
session lasted (about 4 kB/s at 60 fps: most of the client's RSS growth in
an evening-long soak).  RecentList keeps at least the last ``keep`` values
and never more than twice that: it is still a list (slices, ``len``,
indexing), and trimming happens once per ``keep`` appends, so an append
stays O(1) amortised.
"""

from __future__ import annotations

# Half a minute at 60 fps: the tests and benchmarks that read them run shorter sessions.
KEEP = 2048


class RecentList(list):
    """A list that forgets its oldest values beyond ``2 * keep``, down to ``keep``."""

    def __init__(self, keep: int = KEEP):
        super().__init__()
        self.keep = keep

    def append(self, value) -> None:
        super().append(value)
        if len(self) >= 2 * self.keep:
            del self[:-self.keep]
