"""The sound device's recent fills, (first sample index, client time), in one array.

The playback records a row at every device fill (100 to 200 a second) so
tests and benchmarks can map any output sample back to when it was handed
to the device.  Kept as a deque of tuples, each fill made three Python
objects (a tuple and two large ints) that lived 20 to 40 s among frames,
datagrams and stamps that live milliseconds: 12,000 objects, 600 new a
second.  pymalloc gives a pool back only when its every block is free, and
the client's pymalloc memory crept with its live blocks flat; with this
ring and RecentList's arrays it stopped creeping in the pair_input soak
(docs/SOAK.md, fourth pass).  A fill is two int64 written into a
preallocated ring: no object per fill.
"""

from __future__ import annotations

import threading

import numpy as np

TIMELINE_FILLS = 4096  # device fills remembered: 20 s or more; tests read 10 s at most


class FillTimeline:
    """The last ``capacity`` (sample index, time ns) rows, oldest first as an array."""

    def __init__(self, capacity: int = TIMELINE_FILLS):
        self._rows = np.zeros((capacity, 2), dtype=np.int64)
        self._count = 0
        # Appended on SDL's audio thread, read on others: a reader must not
        # see the ring's start move under its copy.
        self._lock = threading.Lock()

    def append(self, sample_index: int, now_ns: int) -> None:
        with self._lock:
            row = self._rows[self._count % len(self._rows)]
            row[0] = sample_index
            row[1] = now_ns
            self._count += 1

    def __len__(self) -> int:
        return min(self._count, len(self._rows))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        with self._lock:
            count, capacity = self._count, len(self._rows)
            if count <= capacity:
                ordered = self._rows[:count].copy()
            else:
                start = count % capacity
                ordered = np.concatenate((self._rows[start:], self._rows[:start]))
        return ordered if dtype is None else ordered.astype(dtype)

    def __getitem__(self, index):
        return np.asarray(self)[index]

    def __iter__(self):
        return iter([(int(index), int(now)) for index, now in np.asarray(self)])
