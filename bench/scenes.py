"""What the observer's painter shows: three scenes, so no single one flatters a pipeline.

- ``game``: the whole screen scrolls every frame at ``fps`` and the marker
  carries each frame's number (the only scene of the first bench).  Every
  change lands on the painter's own 60 Hz grid, so against a capture on a
  grid of the same rate the phase between the two is set once per run (and
  drifts slowly): a run can be lucky or unlucky as a whole, and a
  change-driven capture (rootstream's XDAMAGE) is never made to wait.
- ``motion``: "change in motion".  The marker's corner changes at random
  moments, off the painter's grid, while the rest of the screen keeps
  scrolling at ``fps``: a change waits for whatever capture comes next, as a
  click's answer does in a game, and the encoder always has a full frame of
  motion to code with it.
- ``desktop``: nothing moves; after an idle spell the marker changes once.
  A change on an idle screen must not wait for a capture slot.

``Schedule`` says what the painter does next and when; the painter
(bench/observer.py) does the drawing.  Only marker changes are numbered and
timed: they are what the watcher reads on the client's display.
"""

from __future__ import annotations

import random

SCENES = ("game", "motion", "desktop")
# Seconds between two marker changes, drawn uniformly: long enough that one
# change has reached the client before the next (so each is timed alone) and,
# on the desktop, that a rate cap's credit has refilled.  Not shortened to get
# more changes per second: a change in motion costs a change-driven capture
# one extra grab, and more of them a second than its rate cap's slack repays
# would measure a different scene (tried, issue 15: with 0.08-0.16 s one 720p
# run measured rootstream's motion p50 at 13.6 ms, where the closing note's
# rounds had 8.4, and capture's wait was most of it).  Runs get longer.
CHANGE_GAP_S = {"motion": (0.12, 0.28), "desktop": (0.3, 0.5)}
# Timed changes a motion run should have at least, so that its p99 is not just
# its slowest change or two: the bench lengthens the run to reach it.
MIN_TIMED_CHANGES = 200
TICK, CHANGE = "tick", "change"


def seconds_for(scene: str, fps: float, seconds: float) -> float:
    """A run's length for ``scene``: ``seconds``, or longer to paint MIN_TIMED_CHANGES
    (with a margin for the painter's own time between changes)."""
    per_second = expected_changes(scene, fps, 1.0)
    return max(seconds, 1.15 * MIN_TIMED_CHANGES / per_second) if scene == "motion" \
        else seconds


def expected_changes(scene: str, fps: float, seconds: float) -> float:
    """About how many marker changes a run paints: what "too few seen" is measured against."""
    if scene == "game":
        return fps * seconds
    low, high = CHANGE_GAP_S[scene]
    return seconds / ((low + high) / 2)


class Schedule:
    """The painter's next step in a ``motion`` or ``desktop`` scene: a tick or a change."""

    def __init__(self, scene: str, fps: float, now_ns: int, seed: int | None = None):
        if scene not in CHANGE_GAP_S:
            raise ValueError(f"scene {scene!r} has no schedule (one of {', '.join(SCENES)})")
        self.scene = scene
        self.moving = scene == "motion"
        self._period_ns = round(1e9 / fps)
        self._random = random.Random(seed)
        self._next_tick_ns = now_ns
        self._next_change_ns = now_ns + self._gap_ns()

    def _gap_ns(self) -> int:
        low, high = CHANGE_GAP_S[self.scene]
        return round(self._random.uniform(low, high) * 1e9)

    def next(self) -> tuple[str, int]:
        """(what, when in monotonic ns) comes next."""
        if self.moving and self._next_tick_ns < self._next_change_ns:
            return TICK, self._next_tick_ns
        return CHANGE, self._next_change_ns

    def done(self, what: str, finished_ns: int) -> None:
        """``what`` was put on the screen and synced at ``finished_ns``."""
        if what == TICK:
            self._next_tick_ns += self._period_ns
            if self._next_tick_ns <= finished_ns:  # late: resume the cadence, no burst
                self._next_tick_ns = finished_ns + self._period_ns
        else:
            self._next_change_ns = finished_ns + self._gap_ns()
