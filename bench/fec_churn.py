"""The lossy client's receive path alone, ~30x faster than real time: does it keep memory?

    .venv/bin/python bench/fec_churn.py [FRAMES] [--trace]

Fragments frames of the sizes an adaptive bitrate makes (0.5 to 9 Mbit/s at
60 fps, a keyframe ten times larger every 120 frames) with 30 % FEC, drops
5 % of the fragments, reassembles them (FEC rebuilds what it can) and copies
each frame out as the decode stage does.  Prints RSS every 20,000 frames;
with ``--trace`` also the Python heap's growth by file:line since frame
20,000.  This is how zfec keeping the tuples it was handed was found
(docs/SOAK.md): RSS +2.4 MB from frame 20,000 to 100,000 with the old
ErasureCode, +0.14 MB with the fixed one.
"""

from __future__ import annotations

import random
import sys
import time
import tracemalloc

from rootstream.protocol.reassembly import Reassembler
from rootstream.protocol.video import VideoFragmenter

EVERY = 20_000
FRAME_NS = 16_666_667


def rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))


def main(frames: int, trace: bool) -> None:
    if trace:
        tracemalloc.start(1)
    rng = random.Random(20)
    fragmenter = VideoFragmenter(fec_share=0.3)
    reassembler = Reassembler()
    reference = None
    started = time.monotonic()
    now_ns = 0
    for number in range(frames + 1):
        kbps = rng.choice([500, 800, 1200, 3000, 6000, 9000])
        size = max(200, int(rng.lognormvariate(0, 0.3) * kbps * 1000 / 8 / 60))
        keyframe = number % 120 == 0
        payloads = fragmenter.fragment(bytes(size * (10 if keyframe else 1)), keyframe=keyframe)
        now_ns += FRAME_NS
        for payload in payloads:
            if rng.random() < 0.05:
                continue
            frame = reassembler.push(bytes(payload), 0, now_ns)
            if frame is not None:
                bytes(frame.data)  # what the decode stage hands FFmpeg
        reassembler.expire(now_ns)
        if number % EVERY:
            continue
        line = f"{number:7d} frames {time.monotonic() - started:5.0f} s  RSS {rss_kb()} kB"
        if trace:
            snapshot = tracemalloc.take_snapshot()
            if reference is None and number >= EVERY:
                reference = snapshot
            elif reference is not None:
                top = snapshot.compare_to(reference, "lineno")[:4]
                line += "  | " + "; ".join(f"{s.traceback[0].filename.rsplit('/', 1)[-1]}:"
                                           f"{s.traceback[0].lineno} {s.size_diff:+d} B"
                                           for s in top)
        print(line, flush=True)
    print(reassembler.stats)


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(arguments[0]) if arguments else 100_000, "--trace" in sys.argv)
