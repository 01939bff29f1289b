"""The host's video pipeline: capture -> convert -> encode -> the sender stage.

Two threads, each owning its stage (rules of the road: latest frame wins):

- ``capture``: grab -> convert to NV12 -> a one-slot mailbox;
- ``encode``: mailbox -> encode -> ``VideoSender.send_frame`` (fragment, FEC,
  seal, pace, send: rootstream.net.sender), stamping each frame so every
  stage's latency is a field.

The control thread steers
the pipeline only through small thread-safe calls (``request_keyframe``,
``set_bitrate``, ``set_fec_share``, ``take_wishes``); each thread applies
them to the objects it owns before its next frame.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from rootstream.capture import open_capture
from rootstream.capture.pattern import MAX_SIZE
from rootstream.convert import NV12Converter
from rootstream.encode import open_encoder
from rootstream.errors import RootStreamError
from rootstream.frame import CapturedFrame, HostStamps
from rootstream.mailbox import Mailbox
from rootstream.marker import MARKER_HEIGHT, MARKER_WIDTH
from rootstream.net.repair import RepairStore
from rootstream.net.sender import VideoSender
from rootstream.protocol import Hello
from rootstream.stage import StageError, describe, run_stage
from rootstream.stats import StatsCollector
from rootstream.switch_interval import ShortSwitch

HOST_STAGES = ("convert", "encode", "send", "host")
# Keyframe requests within this long after an IDR went out are served by it:
# a viewer that asked before it arrived gets it, and several viewers that lost
# the same burst cost one IDR, not one each.  (A client repeats its request
# every 100 ms, so one whose IDR was lost too is heard again after this.)
KEYFRAME_COALESCE_NS = 100_000_000


def refresh_frames(fps: int, refresh_ms: int) -> int:
    """Frames per intra-refresh cycle for ``host --refresh-ms`` (0: off)."""
    return max(2, round(fps * refresh_ms / 1000)) if refresh_ms > 0 else 0


@dataclass
class _PendingFrame:
    frame: object  # av.VideoFrame from the converter's pool
    stamps: HostStamps
    taken_ns: int = 0  # when the encode thread took it from the mailbox


class VideoPipeline:
    """Opens the capture and the encoder; ``start`` runs the two threads.

    ``destination()`` returns where frames go, ``(first viewer's address,
    the other viewers' outlets)`` (rootstream.host.viewers), or None when
    nobody watches: the threads then idle.
    """

    def __init__(self, options, *, transport, stats: StatsCollector, max_payload: int,
                 log: Callable[[str], None]):
        self.options = options
        self.transport = transport
        self.stats = stats
        self.log = log
        opts = {"fps": options.fps}
        if options.display:
            opts["display"] = options.display
        if getattr(options, "output", None):
            opts["output"] = options.output
        if options.source in ("test", "auto"):
            opts["width"], opts["height"] = options.size
        self.capture = open_capture(options.source, **opts)
        try:
            width, height = self.capture.width, self.capture.height
            self.converter = NV12Converter(width, height, self.capture.pixel_format, pool_size=4)
            self.encoder = open_encoder(options.encoder, width=width, height=height,
                                        fps=options.fps, bitrate=options.bitrate,
                                        codec=options.codec, refresh=self._refresh(options.fps))
        except BaseException:
            self.capture.close()
            raise
        self.width, self.height = width, height
        self.fps, self.bitrate = options.fps, options.bitrate
        # What the current session streams, as one tuple the threads read at
        # once so they never see half of a change (see take_wishes).
        self._stream = (width, height, self.fps, self.bitrate)
        self._capture_settings = (width, height, self.fps)  # owned by the capture thread
        self._bitrate_wish: int | None = None  # a session's rate, set once by the encode thread
        self._next_bitrate: int | None = None  # adaptive rate, applied by the encode thread
        # What was sent, kept a moment for clients that ask for some again.
        self.repairs = RepairStore() if getattr(options, "repair", True) else None
        self.sender = VideoSender(transport, max_payload=max_payload,
                                  fec_share=options.fec_share, pacing=options.pacing,
                                  repairs=self.repairs)
        self._idr = threading.Event()
        self._last_keyframe_ns = 0  # when the encode thread last sent an IDR
        self.keyframes_coalesced = 0
        if getattr(options, "refresh_ms", 0) and not self.encoder.refresh:
            log(f"rootstream host: the {self.encoder.name} encoder has no intra refresh; "
                "viewers recover with keyframes")
        # A still screen produces no frames: a new client or a keyframe request
        # makes the capture stage grab the current picture anyway.
        self._want_picture = threading.Event()
        self._mailbox: Mailbox[_PendingFrame] = Mailbox("encode")
        self._threads: list[threading.Thread] = []
        self._switch = ShortSwitch()
        # --frame-trace: each frame's stamps, joined with the client's trace by
        # frame id, to see where a slow frame waited (bench/glass_trace.py).
        trace = getattr(options, "frame_trace", None)
        self._trace = open(trace, "a", buffering=1) if trace else None  # noqa: SIM115
        # Why the picture stopped for good (a compositor that ended the session,
        # a broken encoder, a bug in a stage), so the host says bye with
        # ByeReason.ERROR and the command exits non-zero: a service manager
        # restarts it rather than it serving keepalives without a picture.
        self.failure: RootStreamError | None = None

    # -- steering, from the control thread ----------------------------------------------------

    def start(self, destination: Callable[[], tuple | None], stop: threading.Event) -> None:
        failed = partial(self._stage_failed, stop)
        self._switch.hold()  # a stage that wakes gets the GIL sooner (switch_interval.py)
        self._threads = [
            threading.Thread(target=run_stage, name=name, daemon=True,
                             args=(name, partial(loop, destination, stop), failed))
            for name, loop in (("capture", self._capture_loop), ("encode", self._encode_loop))]
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        self._mailbox.close()
        for thread in self._threads:
            thread.join(timeout=2)
        self._switch.release()

    def close(self) -> None:
        self.capture.close()
        self.encoder.close()
        if self._trace is not None:
            self._trace.close()

    def request_keyframe(self, *, coalesce: bool = False) -> None:
        """An IDR from the current picture, even if the screen is still.

        Every request made before the next frame is encoded is served by that
        one IDR; with ``coalesce`` (a client's request) so is one made within
        KEYFRAME_COALESCE_NS after an IDR went out."""
        if coalesce and time.monotonic_ns() - self._last_keyframe_ns < KEYFRAME_COALESCE_NS:
            self.keyframes_coalesced += 1
            return
        self._idr.set()
        self._want_picture.set()

    @property
    def refreshes(self) -> bool:
        """Viewers recover by intra refresh (no keyframe needed to join)."""
        return self.encoder.refresh > 0

    def _refresh(self, fps: int) -> int:
        return refresh_frames(fps, getattr(self.options, "refresh_ms", 0))

    def drop_pending(self) -> None:
        self._mailbox.clear()

    def set_bitrate(self, bps: int) -> None:
        self._next_bitrate = bps

    def set_fec_share(self, share: float) -> None:
        self.sender.fec_share = share  # a float store: the encode thread reads it per frame

    @property
    def fec_share(self) -> float:
        return self.sender.fec_share

    @property
    def frames_dropped(self) -> int:
        return self._mailbox.dropped

    def take_wishes(self, hello: Hello) -> None:
        """Settle what a new session streams (docs/PROTOCOL.md §4): the test pattern
        takes the hello's size and frame rate, any source its bitrate; the rest
        comes from the options.  Each thread rebuilds its own stage before its
        next frame (_follow_capture_wishes, _follow_wishes)."""
        width, height, fps = self.width, self.height, self.fps
        if self.capture.name == "test":
            (width, height), fps = self.options.size, self.options.fps
            w, h = hello.max_width, hello.max_height
            if (MARKER_WIDTH <= w <= MAX_SIZE[0] and MARKER_HEIGHT <= h <= MAX_SIZE[1]
                    and w % 2 == 0 and h % 2 == 0):
                width, height = w, h
            if 1 <= hello.want_fps <= 240:
                fps = hello.want_fps
        bitrate = self.options.bitrate
        if hello.want_bitrate_kbps:
            bitrate = min(max(hello.want_bitrate_kbps * 1000, 200_000), 500_000_000)
        self.width, self.height, self.fps, self.bitrate = width, height, fps, bitrate
        self._stream = (width, height, fps, bitrate)
        self._bitrate_wish = bitrate

    def streams_wishes(self, hello: Hello) -> bool:
        """Whether what is streamed now is what ``hello`` asks for (a later
        viewer asking nothing in particular gets what is streamed)."""
        width, height, fps, bitrate = self._stream
        if hello.want_fps and hello.want_fps != fps:
            return False
        if hello.want_bitrate_kbps and hello.want_bitrate_kbps * 1000 != bitrate:
            return False
        return self.capture.name != "test" or not hello.max_width or (
            (hello.max_width, hello.max_height) == (width, height))

    def describe_stream(self) -> str:
        width, height, fps, bitrate = self._stream
        return f"{width}x{height}@{fps} {bitrate / 1e6:g} Mbit/s"

    # -- the capture thread ---------------------------------------------------------------

    def _capture_loop(self, destination, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                if destination() is None:
                    time.sleep(0.02)
                    continue
                self._follow_capture_wishes()
                force = self._want_picture.is_set()
                self._want_picture.clear()
                captured: CapturedFrame | None = self.capture.grab(timeout=0.1, force=force)
                if captured is None:
                    continue
                frame = self.converter.convert(captured)
                self._mailbox.put(_PendingFrame(frame, captured.stamps))
        except RootStreamError as exc:
            self._stopped(stop, exc, f"capture stopped: {describe(exc)}")

    def _follow_capture_wishes(self) -> None:
        """A test pattern of the session's size and rate."""
        width, height, fps, _ = self._stream
        if (width, height, fps) == self._capture_settings:
            return
        capture = open_capture("test", width=width, height=height, fps=fps)
        self.converter = NV12Converter(width, height, capture.pixel_format, pool_size=4)
        self.capture, old = capture, self.capture
        self._capture_settings = (width, height, fps)
        old.close()

    # -- the encode thread ----------------------------------------------------------------

    def _encode_loop(self, destination, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                pending = self._mailbox.take(timeout=0.1)
                if pending is not None:
                    pending.taken_ns = time.monotonic_ns()
                route = destination()
                if pending is None or route is None:
                    continue
                self._apply_bitrate()
                if not self._follow_wishes(pending.frame):
                    continue
                self._encode_and_send(pending, *route)
        except RootStreamError as exc:
            self._stopped(stop, exc, f"encoder stopped: {exc}")

    def _stage_failed(self, stop: threading.Event, error: StageError) -> None:
        self._stopped(stop, error, describe(error))

    def _stopped(self, stop: threading.Event, error: RootStreamError, line: str) -> None:
        """A stage stopped for good: the first one's reason is said and kept."""
        if self.failure is None:
            self.failure = error
            self.log(f"rootstream host: {line}")
        stop.set()

    def _encode_and_send(self, pending: _PendingFrame, address, outlets=()) -> None:
        force = self._idr.is_set()
        if force:
            self._idr.clear()
        units = self.encoder.encode(pending.frame, force_keyframe=force)
        if any(unit.keyframe for unit in units):
            self._last_keyframe_ns = time.monotonic_ns()
        stamps = pending.stamps
        stamps.encoded = time.monotonic_ns()
        frame_id = self.sender.fragmenter.next_frame_id
        size = self.sender.send_frame(units, stamps, (address,), outlets=outlets,
                                      bitrate_bps=self.encoder.bitrate, fps=self._stream[2])
        if units and self._trace is not None:
            self._trace.write(json.dumps({
                "frame_id": frame_id, "captured_ns": stamps.captured,
                "converted_ns": stamps.converted, "taken_ns": pending.taken_ns,
                "encoded_ns": stamps.encoded, "sent_ns": stamps.sent}) + "\n")
        if units:
            self.stats.frame(size)
            self.stats.record("convert", stamps.converted - stamps.captured)
            self.stats.record("encode", stamps.encoded - stamps.converted)
            self.stats.record("send", stamps.sent - stamps.encoded)
            self.stats.record("host", stamps.sent - stamps.captured)

    def _follow_wishes(self, frame) -> bool:
        """An encoder for the session's size, rate and bitrate.  False for a frame
        of another size, captured before the session's wishes."""
        width, height, fps, _ = self._stream
        if (frame.width, frame.height) != (width, height):
            return False
        old = self.encoder
        if (old.width, old.height, old.fps) != (width, height, fps):
            self.encoder = open_encoder(old.name, width=width, height=height, fps=fps,
                                        bitrate=self._stream[3], codec=self.options.codec,
                                        refresh=self._refresh(fps))
            old.close()
        wish, self._bitrate_wish = self._bitrate_wish, None
        if wish is not None and wish != self.encoder.bitrate:
            self.encoder.set_bitrate(wish)
        return True

    def _apply_bitrate(self) -> None:
        bps, self._next_bitrate = self._next_bitrate, None
        if bps is None or bps == self.encoder.bitrate:
            return
        if not self.encoder.set_bitrate(bps):
            # x264 cannot raise its VBV ceiling in place: it reopened, and
            # its next frame is an IDR.
            self.stats.count("encoder_reopened")
