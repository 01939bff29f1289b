"""The sound device's fill timeline: the recent past, in order, with no object per fill.

Each fill used to leave a tuple and two ints alive for 20 to 40 s, some 600
new long-lived small objects a second among short-lived ones, while the
client's pymalloc memory crept with its live blocks flat (docs/SOAK.md,
fourth pass).  What is asserted here is a count of objects, not memory:
independent of the load.
"""

from __future__ import annotations

import gc
import time

import numpy as np
from test_audio_playback import disk_audio  # noqa: F401 - a fixture

from rootstream.audio.playback import open_audio_playback
from rootstream.audio.timeline import FillTimeline


def reachable_from(root) -> int:
    """How many objects ``root`` keeps alive through references Python can see
    (its class, and the modules and code behind it, are not its own)."""
    seen = {id(root)}
    queue = [root]
    while queue:
        for child in gc.get_referents(queue.pop()):
            if isinstance(child, type):
                continue
            if id(child) not in seen:
                seen.add(id(child))
                queue.append(child)
    return len(seen) - 1


def test_the_timeline_keeps_the_last_fills_oldest_first():
    timeline = FillTimeline(capacity=4)
    assert len(timeline) == 0 and np.asarray(timeline).shape == (0, 2)
    for fill in range(3):
        timeline.append(fill * 256, 1_000 + fill)
    assert np.asarray(timeline).tolist() == [[0, 1_000], [256, 1_001], [512, 1_002]]
    for fill in range(3, 10):  # past its capacity: the oldest rows go
        timeline.append(fill * 256, 1_000 + fill)
    assert len(timeline) == 4
    assert list(timeline) == [(fill * 256, 1_000 + fill) for fill in range(6, 10)]
    assert np.array(timeline, dtype=np.float64)[:, 0].tolist() == [1536.0, 1792.0, 2048.0, 2304.0]
    assert timeline[-1].tolist() == [2304, 1_009]


def test_a_playing_device_keeps_no_python_object_per_fill(disk_audio):  # noqa: F811
    with open_audio_playback("sdl", device_samples=256) as playback:
        deadline = time.monotonic() + 10
        while len(playback.timeline) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        fills = len(playback.timeline)
        kept = reachable_from(playback.timeline)
    assert fills >= 50, "SDL's disk driver did not fill the device"
    # The array, its counter and its lock; a deque of tuples kept three
    # objects per fill (150 and more here).
    assert kept < 10, f"{kept} objects kept for {fills} fills"
