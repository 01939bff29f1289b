"""Handing a complete frame to the decode thread does not wait for the receive thread.

The receive thread offers a frame and goes straight on with Python work (the
frame's parity datagrams, its chores).  The decode thread, woken by the
offer, needs the GIL to take the frame, and without a yield it got it only
when the receive thread next blocked (issue 15: 0.17 ms median per 720p
frame).  Here a real DecodeStage with a real decoder gets real x264 frames;
after each offer this thread keeps the GIL busy for BUSY_S, as the receive
thread would.  Without the pause in ``DecodeStage.offer`` nearly every frame is
decoded only after that; with it, most start at once.
"""

from __future__ import annotations

import statistics
import threading
import time

from rootstream.client.video import DecodeStage
from rootstream.decode import open_decoder
from rootstream.encode import open_encoder, pattern_nv12
from rootstream.protocol.reassembly import AssembledFrame
from rootstream.stats import StatsCollector

W, H = 320, 192
FRAMES = 40
BUSY_S = 0.004  # the receive thread's Python work after the offer, holding the GIL


def _frames() -> list[AssembledFrame]:
    with open_encoder("x264", width=W, height=H, fps=60, bitrate=1_000_000) as encoder:
        units = [encoder.encode(pattern_nv12(W, H, i), force_keyframe=i == 0)[0]
                 for i in range(FRAMES)]
    return [AssembledFrame(i, bytearray(unit.data), unit.keyframe, i, 0, 0, 0, False, 0)
            for i, unit in enumerate(units)]


def test_the_decoder_starts_while_the_receive_thread_keeps_working():
    frames = _frames()
    stage = DecodeStage(StatsCollector("client", ("decode",)))
    stop = threading.Event()
    stage.start(open_decoder("software"), stop, lambda error: None)
    delays = []
    try:
        assert stage.ready.wait(5)
        for frame in frames:
            time.sleep(0.005)  # the decode thread back to waiting, as between frames
            offered = frame.assembled_ns = time.monotonic_ns()
            assert stage.offer(frame)
            busy_until = time.monotonic() + BUSY_S
            while time.monotonic() < busy_until:  # pure Python: keeps the GIL
                pass
            decoded = stage.pictures.take(timeout=2)
            assert decoded is not None, "the decoder showed nothing"
            delays.append((decoded.stamps.decoded - offered) / 1e9)
    finally:
        stop.set()
        stage.close()
    # A 320x192 frame decodes in well under a millisecond: decoded before the
    # busy work ends means the decode thread got the GIL at the offer.
    early = sum(delay < BUSY_S / 2 for delay in delays[1:])
    assert early >= len(delays[1:]) // 3, (early, statistics.median(delays))
