"""The client's decode stage: complete frames in, the newest picture out.

A P-frame needs its reference, so the decoder may not skip frames: every
complete frame goes through it, in order, on the ``decode`` thread.  After a
loss it decodes nothing until a keyframe arrives (a picture built on a
missing reference is garbage), and a picture FFmpeg had to patch is never
shown.  Between the receiver and the decoder sits a short queue, not a
mailbox: when it overflows the decoder is hopelessly behind, so it is
emptied and a keyframe wanted instead of decoding a backlog (moonlight does
the same).  Decoded pictures go to a one-slot mailbox: the presenter shows
the newest.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

from rootstream.errors import DecodeError
from rootstream.frame import ClientStamps
from rootstream.mailbox import Mailbox
from rootstream.protocol import AssembledFrame
from rootstream.stats import StatsCollector

DECODE_QUEUE = 4


@dataclass
class Decoded:
    picture: object  # av.VideoFrame
    frame: AssembledFrame
    stamps: ClientStamps


class DecodeStage:
    def __init__(self, stats: StatsCollector):
        self.stats = stats
        self._queue: queue.Queue[AssembledFrame] = queue.Queue(DECODE_QUEUE)
        self.pictures: Mailbox[Decoded] = Mailbox("present")
        # Set whenever the next frame shown must start from a keyframe; the
        # receiver asks the host for one while it is set.
        self.need_keyframe = threading.Event()
        self.ready = threading.Event()  # the decoder is open: frames are worth queueing
        self.decoded_frame_id = 0  # the newest frame decoded, told in keyframe requests
        self._thread: threading.Thread | None = None

    def start(self, decoder, stop: threading.Event) -> None:
        self._thread = threading.Thread(target=self._loop, args=(decoder, stop), name="decode",
                                        daemon=True)
        self._thread.start()

    def offer(self, frame: AssembledFrame) -> bool:
        """Queue a complete frame; False when the backlog was dropped instead."""
        try:
            self._queue.put_nowait(frame)
            return True
        except queue.Full:
            self.drain()
            self.stats.count("decode_overflow")
            self.need_keyframe.set()
            return False

    def drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def close(self) -> None:
        self.pictures.close()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _loop(self, decoder, stop: threading.Event) -> None:
        self.need_keyframe.set()  # start from a keyframe: the receiver asks for one
        self.ready.set()
        while not stop.is_set():
            try:
                frame = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            if frame.lost_before:
                self.need_keyframe.set()
            if self.need_keyframe.is_set():
                if not frame.keyframe:
                    self.stats.count("skipped_waiting_keyframe")
                    continue
                self.need_keyframe.clear()
            self._decode(decoder, frame)
        decoder.close()

    def _decode(self, decoder, frame: AssembledFrame) -> None:
        stamps = ClientStamps(received=frame.first_ns, assembled=frame.assembled_ns)
        try:
            pictures = decoder.decode(bytes(frame.data))
        except DecodeError:
            self.stats.count("decode_errors")
            self.need_keyframe.set()
            return
        stamps.decoded = time.monotonic_ns()
        self.decoded_frame_id = frame.frame_id
        for picture in pictures:
            if picture.is_corrupt:
                # FFmpeg concealed damage: never show it, start over from a keyframe.
                self.stats.count("corrupt_pictures")
                self.need_keyframe.set()
                continue
            self.stats.frame(len(frame.data))
            self.pictures.put(Decoded(picture, frame, stamps))
