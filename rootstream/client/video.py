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

The keyframe rule has one owner, :class:`KeyframeRule`: whoever sees that
the next picture must start from a keyframe (this stage after a loss, an
error or an overflow; the receiver after a frame expired or a reconnect)
says ``want()``; the decoder skips to the next keyframe while it is wanted;
the receive thread asks ``due(now)`` when to send the host a request.

A host that refreshes (Capability.REFRESH: x264's intra refresh, the
hardware encoders' equivalents) sends no periodic keyframes; a client that
joined late or lost a reference resumes at whichever comes first, a keyframe
or the next refresh cycle's first frame (a recovery point, with the
parameter sets).  It asks for a keyframe as always: the host decides whether
one is worth sending (rootstream.host.room_policy: not while others watch,
unless this client has waited too long).
The decoder is flushed there, so FFmpeg shows nothing until the recovery
point's frame count has passed, and :class:`RefreshHold` hides one cycle
more (x264's wave does not always finish in the cycle it announces): never a
picture built on a missing reference.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from rootstream.errors import DecodeError
from rootstream.frame import ClientStamps
from rootstream.mailbox import Mailbox
from rootstream.protocol import AssembledFrame, IdrReason
from rootstream.stage import StageError, run_stage
from rootstream.stats import StatsCollector
from rootstream.switch_interval import ShortSwitch

# Four frames of slack, and room for the frames a repair held back
# (rootstream.protocol.repair_wait.MAX_HELD), released together when it came.
DECODE_QUEUE = 16
IDR_RETRY_S = 0.1  # repeat a keyframe request this often until one arrives
# How long the receive thread steps aside after waking the decode thread (see
# DecodeStage.offer); 0.1 ms let it win half the time here, 0.2 ms three in four.
HANDOFF_PAUSE_S = 0.0002


class KeyframeRule:
    """"The next picture shown must start from a keyframe", and when to ask for one."""

    def __init__(self) -> None:
        self._wanted = threading.Event()
        self._reason = IdrReason.FRAME_LOST
        self._urgent = False  # ask at the next check, retry interval or not
        self._last_request = 0.0
        # The host refreshes (set from the config): a refresh cycle's first
        # frame serves as well as a keyframe.
        self.refresh = False

    @property
    def wanted(self) -> bool:
        return self._wanted.is_set()

    def want(self, reason: IdrReason = IdrReason.FRAME_LOST, *, urgent: bool = False) -> None:
        self._reason = reason
        if urgent:
            self._urgent = True
        self._wanted.set()

    def satisfied(self) -> None:
        """A keyframe reached the decoder: P-frames are good again."""
        self._wanted.clear()

    def due(self, now: float) -> IdrReason | None:
        """Why to send a keyframe request now, or None; a request is assumed sent.

        While one is wanted, the request repeats every IDR_RETRY_S (a lost
        request must not freeze the picture for good); an urgent want goes
        out at once.
        """
        if not self._wanted.is_set():
            return None
        if not self._urgent and now - self._last_request <= IDR_RETRY_S:
            return None
        self._urgent = False
        self._last_request = now
        reason, self._reason = self._reason, IdrReason.FRAME_LOST
        return reason


class RefreshHold:
    """After resuming at a refresh cycle's first frame: which pictures may show.

    FFmpeg withholds pictures until the recovery point's frame count has
    passed, but x264's refresh wave does not always finish within the cycle it
    announces: with the 720p test pattern at 6 and 10 frames a cycle, every
    eighth cycle still had stale blocks until the end of the next one (clean
    from start + 2 cycles - 1; tests/test_refresh.py).  So a resumed client
    shows nothing before two cycles from where it started, the cycle's length
    read off the next recovery point's frame id.
    """

    def __init__(self) -> None:
        self._start: int | None = None
        self._next: int | None = None

    @property
    def holding(self) -> bool:
        return self._start is not None

    def resume(self, frame_id: int) -> None:
        self._start, self._next = frame_id, None

    def clear(self) -> None:
        """A keyframe: a clean start, nothing to hold back."""
        self._start = self._next = None

    def allows(self, frame: AssembledFrame) -> bool:
        """Whether this frame's picture may be shown (called once per frame, in order)."""
        if self._start is None:
            return True
        if frame.refresh_start and frame.frame_id != self._start and self._next is None:
            self._next = frame.frame_id
        if self._next is None:
            return False
        cycle = (self._next - self._start) & 0xFFFFFFFF
        past = (frame.frame_id - self._next) & 0xFFFFFFFF
        if cycle - 1 <= past < 1 << 31:
            self.clear()
            return True
        return False


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
        self.keyframes = KeyframeRule()
        self.refresh_hold = RefreshHold()
        self.ready = threading.Event()  # the decoder is open: frames are worth queueing
        self.decoded_frame_id = 0  # the newest frame decoded, told in keyframe requests
        self._thread: threading.Thread | None = None
        self._switch = ShortSwitch()
        self._idle = False  # the decode thread waits for a frame (a bool store: no lock)

    def start(self, decoder, stop: threading.Event,
              failed: Callable[[StageError], None]) -> None:
        """Decode on a thread of its own until ``stop``; ``failed`` hears why if it
        stops on an error (rootstream.stage)."""
        # While it runs, a stage that wakes (receive, decode, present) gets the GIL
        # sooner: rootstream.switch_interval.
        self._switch.hold()
        self._thread = threading.Thread(
            target=run_stage, args=("decode", partial(self._loop, decoder, stop), failed),
            name="decode", daemon=True)
        self._thread.start()

    def offer(self, frame: AssembledFrame) -> bool:
        """Queue a complete frame; False when the backlog was dropped instead."""
        try:
            self._queue.put_nowait(frame)
        except queue.Full:
            self.drain()
            self.stats.count("decode_overflow")
            self.keyframes.want()
            return False
        if self._idle and HANDOFF_PAUSE_S:
            # The decode thread was waiting and is being woken: step aside so it
            # gets the GIL.  Otherwise the receive thread goes straight on with
            # Python work (the frame's parity, its chores) and the decoder waits
            # for it: 0.17 ms (median) per 720p frame, 0.09 ms with this pause
            # (issue 15).  A yield (os.sched_yield) won only now and then: a
            # thread waking on this VM takes 20-200 µs to run.
            time.sleep(HANDOFF_PAUSE_S)
        return True

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
        self._switch.release()

    def _loop(self, decoder, stop: threading.Event) -> None:
        self.keyframes.want()  # start from a keyframe: the receiver asks for one
        self.ready.set()
        try:
            self._decode_until(decoder, stop)
        finally:
            decoder.close()

    def _decode_until(self, decoder, stop: threading.Event) -> None:
        while not stop.is_set():
            self._idle = True
            try:
                frame = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            finally:
                self._idle = False
            if frame.lost_before:
                self.keyframes.want()
            if self.keyframes.wanted:
                if frame.refresh_start and self.keyframes.refresh and not frame.keyframe:
                    # Start over at the cycle: FFmpeg withholds pictures until the
                    # refresh completes, so nothing damaged is ever shown.
                    decoder.flush()
                    self.refresh_hold.resume(frame.frame_id)
                    self.stats.count("resumed_at_refresh")
                elif not frame.keyframe:
                    self.stats.count("skipped_waiting_keyframe")
                    continue
                self.keyframes.satisfied()
            if frame.keyframe:
                self.refresh_hold.clear()
            self._decode(decoder, frame)

    def _decode(self, decoder, frame: AssembledFrame) -> None:
        stamps = ClientStamps(received=frame.first_ns, assembled=frame.assembled_ns)
        visible = self.refresh_hold.allows(frame)
        try:
            pictures = decoder.decode(bytes(frame.data))
        except DecodeError:
            self.stats.count("decode_errors")
            self.keyframes.want()
            return
        stamps.decoded = time.monotonic_ns()
        self.decoded_frame_id = frame.frame_id
        for picture in pictures:
            if picture.is_corrupt:
                # FFmpeg concealed damage: never show it, start over from a keyframe.
                self.stats.count("corrupt_pictures")
                self.keyframes.want()
                continue
            if not visible:
                self.stats.count("hidden_refreshing")
                continue
            self.stats.frame(len(frame.data))
            self.pictures.put(Decoded(picture, frame, stamps))
