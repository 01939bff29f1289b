"""The 1080p client's decode path alone, faster than real time: does its memory level off?

    .venv/bin/python bench/decode_churn.py [FRAMES] [--size 1920x1080] [--no-trim]

Encodes a few seconds of the test pattern once (x264, as the host does:
10 Mbit/s, a keyframe only at the start of each loop), then feeds those
access units again and again through the client's threads as a session
does: a copy of each frame's bytes decoded on a ``decode`` thread with
FFmpeg's slice threads, the picture handed through the one-slot mailbox to
a ``present`` thread (the null presenter keeps the last one), and
``malloc_trim`` every 600 frames (the client's 10 s at 60 fps).  Prints,
every 6,000 frames (100 s of a session), RSS by kind of mapping
(bench/soak_probe.py) and glibc's figures (rootstream/allocator.py), so a
slope the soak sees over 10 minutes shows here in one or two, and whether
it levels off after the 36,000 frames a soak has.
``MALLOC_ARENA_MAX=N`` in the environment compares fewer arenas.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak_probe import proc_sample, smaps_kinds  # noqa: E402

from rootstream import allocator  # noqa: E402
from rootstream.capture.pattern import PatternCapture  # noqa: E402
from rootstream.decode.pyav import VideoDecoder  # noqa: E402
from rootstream.encode import open_encoder  # noqa: E402
from rootstream.mailbox import Mailbox  # noqa: E402
from rootstream.present.null import NullPresenter  # noqa: E402

LOOP = 300  # frames encoded once and fed again: 5 s at 60 fps
EVERY = 6_000
TRIM_EVERY = 600


def encode_loop(width: int, height: int) -> list[bytes]:
    """The host's test source (scrolling, every macroblock changes) through x264."""
    encoder = open_encoder("x264", width=width, height=height, fps=60, bitrate=10_000_000)
    source = PatternCapture(width, height, 60)
    units = []
    for index in range(LOOP):
        window = source.render(index, time.monotonic_ns())  # (height, pitch) bytes
        pixels = np.ascontiguousarray(window.reshape(height, -1, 4)[:, :width])
        picture = av.VideoFrame.from_ndarray(pixels, format="bgra").reformat(format="nv12")
        for unit in encoder.encode(picture, force_keyframe=index == 0):
            units.append(bytes(unit.data))
    source.close()
    return units


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("frames", nargs="?", type=int, default=60_000)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--no-trim", action="store_true")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    units = encode_loop(width, height)
    print(f"{len(units)} access units, {sum(map(len, units)) // len(units)} B average; "
          f"MALLOC_ARENA_MAX={os.environ.get('MALLOC_ARENA_MAX', 'default')}", flush=True)
    feed: queue.Queue[bytes | None] = queue.Queue(4)
    pictures: Mailbox = Mailbox("present")
    presenter = NullPresenter(width=width, height=height)
    done = threading.Event()

    def decode() -> None:
        decoder = VideoDecoder("software", "h264")
        while (data := feed.get()) is not None:
            for picture in decoder.decode(bytes(data)):  # the decode stage's copy
                pictures.put(picture)
        decoder.close()
        done.set()

    def present() -> None:
        while not done.is_set():
            picture = pictures.take(timeout=0.01)
            if picture is not None:
                presenter.present(picture)

    threads = [threading.Thread(target=decode, name="decode"),
               threading.Thread(target=present, name="present")]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    for number in range(args.frames + 1):
        feed.put(units[number % len(units)])
        if number % TRIM_EVERY == 0 and not args.no_trim:
            allocator.trim()
        if number % EVERY == 0:
            figures = allocator.malloc_figures()
            print(f"{number:6d} frames {time.monotonic() - started:5.0f} s  "
                  f"RSS {proc_sample(os.getpid())['rss_kb']} kB  {smaps_kinds(os.getpid())}  "
                  f"malloc in use {figures.get('in_use_kb')} kB free {figures.get('free_kb')} "
                  f"kB mmapped {figures.get('mmapped_kb')} kB  py_blocks {figures['py_blocks']}",
                  flush=True)
    feed.put(None)
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
