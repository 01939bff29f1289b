"""The pixel observer: glass-to-glass latency that trusts nothing the system reports.

It plays both ends of the glass itself:

- the *painter* shows a moving picture on display A (the host's screen): the
  scrolling test pattern with the marker in its corner, drawn into the root
  window with XShmPutImage at a steady rate.  The marker carries the frame
  number and the painter's own monotonic time in milliseconds; the painter also
  notes, per frame number, the nanosecond at which the server had the pixels
  (after ``XSync`` returned);
- the *watcher* grabs the top-left corner of display B (where the client's
  window sits) each time XDAMAGE says it changed, reads the marker back with
  ``read_marker_bgrx`` and notes when it first saw each frame number.

What the painter shows is one of bench/scenes.py's scenes: ``game`` (the
whole screen scrolls and every frame carries a new marker), ``motion`` (the
marker changes at random moments while the rest scrolls) or ``desktop``
(still, then one change).  Only marker changes are timed.

Latency = when the watcher first saw frame N - when the painter finished
putting frame N, both ``time.monotonic_ns()`` of this one process.  The frame
number ties the two together; the embedded milliseconds are checked against
the painter's own note, so a marker that survived the trip garbled but with a
valid CRC (or a stale picture) cannot pass for a fresh one.  Neither the host,
the client nor the pipeline under test is asked anything.

Use from Python (``with Observer(":1", ":2", 1280, 720) as obs: ...;
obs.result()``) or run ``python bench/observer.py --draw :1 --watch :2``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from cffi import FFI
from scenes import CHANGE, SCENES, Schedule

from rootstream._native import xlib
from rootstream.capture.base import Pacer, wait_until
from rootstream.capture.pattern import PERIOD, STEP_X, STEP_Y, make_tile
from rootstream.capture.x11 import X11Capture
from rootstream.errors import CaptureError
from rootstream.marker import (
    MARKER_HEIGHT,
    MARKER_WIDTH,
    draw_marker,
    read_marker_bgrx,
)

# rootstream's Xlib declarations leave out the one call only a painter needs.
_ffi = FFI()
_ffi.include(xlib.ffi)
_ffi.cdef("""
    Bool XShmPutImage(Display *dpy, Drawable d, GC gc, XImage *image, int src_x, int src_y,
                      int dest_x, int dest_y, unsigned int width, unsigned int height,
                      Bool send_event);
""")
_xext = None

# How much of display B's corner the watcher grabs: the marker plus a margin,
# so a read never depends on the last pixel column.
WATCH_MARGIN = 32
# In the motion scene everything below the watched corner's rows scrolls.
MOVING_TOP = MARKER_HEIGHT + WATCH_MARGIN


def _shm_put_image():
    global _xext
    if _xext is None:
        _xext = _ffi.dlopen("libXext.so.6")
    return _xext.XShmPutImage


@dataclass
class Sighting:
    frame_number: int
    capture_ms: int  # as read off the marker
    seen_ns: int


@dataclass
class ObserverResult:
    """What the observer saw between ``start`` and ``stop`` (after its warm-up)."""

    painted: int = 0  # frames put on display A in the measured window
    seen: int = 0  # distinct frame numbers read on display B in that window
    unreadable: int = 0  # grabs of B whose corner held no valid marker
    foreign: int = 0  # markers that were not ours (unknown number, or time disagreeing)
    latencies_ms: list[float] = field(default_factory=list)
    paint_ms: list[float] = field(default_factory=list)  # render + put + sync per frame
    # (frame number, landed on A, first seen on B) in monotonic ns, per timed change
    timed: list[tuple[int, int, int]] = field(default_factory=list)

    def percentiles(self) -> dict[str, float]:
        if not self.latencies_ms:
            return {}
        values = np.percentile(self.latencies_ms, [50, 95, 99])
        return {f"p{p}": round(float(v), 2) for p, v in zip((50, 95, 99), values, strict=True)}

    def as_dict(self) -> dict:
        return {"painted": self.painted, "seen": self.seen, "unreadable": self.unreadable,
                "foreign": self.foreign, "latency_ms": self.percentiles(),
                "paint_ms_p50": round(float(np.median(self.paint_ms)), 2)
                if self.paint_ms else None}


class Painter:
    """Shows the marked test pattern on ``display`` at ``fps``, noting when each frame landed."""

    def __init__(self, display: str, width: int, height: int, fps: float = 60,
                 scene: str = "game"):
        self.width, self.height = width, height
        self.scene = scene
        self._fps = fps
        self._schedule: Schedule | None = None  # motion and desktop scenes, from the first paint
        self._ticks = 0
        # The test pattern's scrolling texture, rendered straight into the shared
        # image so a frame costs one strided copy and the marker, no extra pass.
        reps_y, reps_x = -(-(height + PERIOD) // PERIOD), -(-(width + PERIOD) // PERIOD)
        self._texture = np.tile(make_tile(), (reps_y, reps_x, 1))
        self._pacer = Pacer(fps)
        # frame number -> monotonic ns at which the server held its pixels, and the
        # milliseconds written into its marker.
        self.landed: dict[int, tuple[int, int]] = {}
        self.paint_ns: list[int] = []
        self.frames = 0
        self._libs = xlib.load()
        self._image = self._gc = None
        x11 = self._libs.x11
        self._display = x11.XOpenDisplay(display.encode())
        if self._display == _ffi.NULL:
            self._display = None
            raise CaptureError(f"observer cannot open X display {display}")
        try:
            xlib.watch(self._display)
            screen = x11.XDefaultScreen(self._display)
            self._root = x11.XRootWindow(self._display, screen)
            size = (x11.XDisplayWidth(self._display, screen),
                    x11.XDisplayHeight(self._display, screen))
            if size != (width, height):
                raise CaptureError(
                    f"display {display} is {size[0]}x{size[1]}, not {width}x{height}",
                    hint="the painted picture must fill the screen: no scaling")
            self._gc = x11.XCreateGC(self._display, self._root, 0, _ffi.NULL)
            self._image, self._shm = self._shared_image(screen)
        except BaseException:
            self.close()
            raise

    def _shared_image(self, screen):
        x11, xext, libc = self._libs.x11, self._libs.xext, self._libs.libc
        visual = x11.XDefaultVisual(self._display, screen)
        depth = x11.XDefaultDepth(self._display, screen)
        if not xext.XShmQueryExtension(self._display):
            raise CaptureError("observer needs MIT-SHM on the painted display")
        info = _ffi.new("XShmSegmentInfo *")
        image = xext.XShmCreateImage(self._display, visual, depth, xlib.ZPIXMAP, _ffi.NULL,
                                     info, self.width, self.height)
        if image == _ffi.NULL or image.bytes_per_line != self.width * 4:
            raise CaptureError("observer cannot make a 32-bit shared image")
        size = image.bytes_per_line * image.height
        shmid = libc.shmget(xlib.IPC_PRIVATE, size, xlib.IPC_CREAT | 0o600)
        if shmid < 0:
            raise CaptureError("observer cannot create a shared memory segment")
        address = libc.shmat(shmid, _ffi.NULL, 0)
        libc.shmctl(shmid, xlib.IPC_RMID, _ffi.NULL)  # freed when the last mapping goes
        if int(_ffi.cast("intptr_t", address)) == -1:
            raise CaptureError("observer cannot map its shared memory segment")
        info.shmid = shmid
        info.shmaddr = _ffi.cast("char *", address)
        info.readOnly = False
        image.data = info.shmaddr
        xext.XShmAttach(self._display, info)
        x11.XSync(self._display, False)
        if xlib.take_errors(self._display):
            raise CaptureError("the X server could not attach the observer's shared memory")
        self._pixels = np.frombuffer(_ffi.buffer(address, size), np.uint8).reshape(
            self.height, self.width * 4)
        self._address = address
        return image, info

    def paint_next(self) -> None:
        """Wait for the next step of the scene (bench/scenes.py) and put it on the screen."""
        if self.scene == "game":
            self._paint_game_frame()
        else:
            self._paint_scheduled()

    def _put(self, x: int, y: int, width: int, height: int) -> int:
        _shm_put_image()(self._display, self._root, self._gc, self._image, x, y, x, y,
                         width, height, False)
        self._libs.x11.XSync(self._display, False)
        return time.monotonic_ns()

    def _scroll(self, rows_from: int, number: int) -> None:
        ox, oy = (number * STEP_X) % PERIOD, (number * STEP_Y) % PERIOD
        np.copyto(self._pixels.reshape(self.height, self.width, 4)[rows_from:],
                  self._texture[oy + rows_from:oy + self.height, ox:ox + self.width])

    def _paint_scheduled(self) -> None:
        """motion / desktop: scroll below the marker's band on a tick; a new marker on a change."""
        if self._schedule is None:
            self._scroll(0, 0)  # the first picture: the whole pattern, then only parts change
            self._put(0, 0, self.width, self.height)
            self._schedule = Schedule(self.scene, self._fps, time.monotonic_ns())
        what, due = self._schedule.next()
        wait_until(due)
        start = time.monotonic_ns()
        if what == CHANGE:
            number = self.frames
            stamp_ms = (start // 1_000_000) & 0xFFFFFFFF
            draw_marker(self._pixels, self.width, self.height, number & 0xFFFFFFFF, stamp_ms)
            landed = self._put(0, 0, MARKER_WIDTH, MARKER_HEIGHT)
            self.landed[number] = (landed, stamp_ms)
            self.paint_ns.append(landed - start)
            self.frames += 1
        else:
            self._ticks += 1
            self._scroll(MOVING_TOP, self._ticks)
            landed = self._put(0, MOVING_TOP, self.width, self.height - MOVING_TOP)
        self._schedule.done(what, landed)

    def _paint_game_frame(self) -> None:
        """Wait for the next tick, draw frame ``frames`` and put it on the screen."""
        slot = self._pacer.wait(None)
        start = time.monotonic_ns()
        number = self.frames
        stamp_ms = (start // 1_000_000) & 0xFFFFFFFF
        ox, oy = (number * STEP_X) % PERIOD, (number * STEP_Y) % PERIOD
        np.copyto(self._pixels.reshape(self.height, self.width, 4),
                  self._texture[oy:oy + self.height, ox:ox + self.width])
        draw_marker(self._pixels, self.width, self.height, number & 0xFFFFFFFF, stamp_ms)
        _shm_put_image()(self._display, self._root, self._gc, self._image, 0, 0, 0, 0,
                         self.width, self.height, False)
        self._libs.x11.XSync(self._display, False)
        landed = time.monotonic_ns()
        self._pacer.taken(slot, start)
        self.landed[number] = (landed, stamp_ms)
        self.paint_ns.append(landed - start)
        self.frames += 1

    def close(self) -> None:
        display, self._display = self._display, None
        if display is None:
            return
        x11 = self._libs.x11
        if self._image is not None:
            self._libs.xext.XShmDetach(display, self._shm)
            x11.XSync(display, False)
            self._image.data = _ffi.NULL
            x11.XDestroyImage(self._image)
            self._pixels = None
            self._libs.libc.shmdt(self._address)
        if self._gc is not None:
            x11.XFreeGC(display, self._gc)
        x11.XCloseDisplay(display)
        xlib.forget(display)


class Watcher:
    """Reads markers off the top-left corner of ``display`` whenever it changes."""

    def __init__(self, display: str, max_fps: float = 1000):
        # max_fps only caps how often XDAMAGE may wake a grab: far above any
        # pipeline's frame rate, so a new picture is never left waiting.
        probe = X11Capture(display, use_damage=False, fps=max_fps)
        screen_w, screen_h = probe.screen_size
        probe.close()
        self.width = min(screen_w, MARKER_WIDTH + WATCH_MARGIN)
        self.height = min(screen_h, MARKER_HEIGHT + WATCH_MARGIN)
        self._capture = X11Capture(display, region=(0, 0, self.width, self.height),
                                   fps=max_fps)
        self.sightings: list[Sighting] = []
        self.unreadable = 0
        self.readable = 0
        self._last = None

    def look(self, timeout: float = 0.1) -> None:
        frame = self._capture.grab(timeout=timeout)
        if frame is None:
            return
        marker = read_marker_bgrx(frame.pixels, self.width, self.height)
        if marker is None:
            self.unreadable += 1
            return
        self.readable += 1
        if marker.frame_number != self._last:
            self._last = marker.frame_number
            self.sightings.append(Sighting(marker.frame_number, marker.capture_ms,
                                           frame.stamps.captured))

    def close(self) -> None:
        self._capture.close()


class Observer:
    """Paints on ``draw_display`` (a child process), watches ``watch_display`` (a thread).

    The painter runs in its own process so that neither side waits for the
    other's hold on the GIL: a watcher that wakes late would add its own delay
    to every figure.  ``time.monotonic_ns()`` is CLOCK_MONOTONIC, one clock for
    every process on the machine, so the two sides' stamps compare directly.
    """

    def __init__(self, draw_display: str, watch_display: str, width: int, height: int,
                 fps: float = 60, scene: str = "game"):
        self.watcher = Watcher(watch_display)
        self._painter_args = [sys.executable, os.path.abspath(__file__), "paint",
                              "--draw", draw_display, "--size", f"{width}x{height}",
                              "--fps", str(fps), "--scene", scene]
        self._painter: subprocess.Popen | None = None
        self._painted: dict | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._window_start_ns = 0
        self._window_end_ns = 0
        self._errors: list[BaseException] = []

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
        self.close()

    def start(self) -> None:
        self._painter = subprocess.Popen(self._painter_args, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
        line = self._painter.stdout.readline()
        if line.strip() != "painting":
            self._painter.wait(5)
            raise RuntimeError(f"observer painter did not start: {self._painter.stderr.read()}")
        self._thread = threading.Thread(target=self._watch, name="observer-watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        try:
            while not self._stop.is_set():
                self.watcher.look()
        except BaseException as exc:  # reported by result(): a dead thread must not hide
            self._errors.append(exc)

    @property
    def watcher_thread_id(self) -> int | None:
        """The watcher thread's kernel id (bench/two_machines.py pins it)."""
        return None if self._thread is None else self._thread.native_id

    def measure_from_now(self) -> None:
        """Frames painted from now on count; everything before was warm-up."""
        self._window_start_ns = time.monotonic_ns()

    def stop(self) -> None:
        if self._painter is None or self._painted is not None:
            return
        self._window_end_ns = time.monotonic_ns()
        self._painter.send_signal(signal.SIGTERM)
        out, err = self._painter.communicate(timeout=10)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self._painted = json.loads(out)
        except ValueError:
            self._errors.append(RuntimeError(f"observer painter failed: {err.strip()}"))
            self._painted = {"landed": [], "paint_ns": []}

    def close(self) -> None:
        if self._painter is not None and self._painter.poll() is None:
            self._painter.kill()
            self._painter.wait()
        self.watcher.close()

    def result(self) -> ObserverResult:
        self.stop()
        if self._errors:
            raise RuntimeError(f"observer failed: {self._errors[0]!r}") from self._errors[0]
        start, end = self._window_start_ns, self._window_end_ns
        result = ObserverResult(unreadable=self.watcher.unreadable)
        landed = {number: (ns, ms) for number, ns, ms in self._painted["landed"]}
        result.painted = sum(1 for t, _ in landed.values() if start <= t <= end)
        for sighting in self.watcher.sightings:
            painted = landed.get(sighting.frame_number)
            if painted is None or painted[1] != sighting.capture_ms:
                result.foreign += 1
                continue
            if not start <= painted[0] <= end:
                continue
            result.seen += 1
            result.latencies_ms.append((sighting.seen_ns - painted[0]) / 1e6)
            result.timed.append((sighting.frame_number, painted[0], sighting.seen_ns))
        result.paint_ms = [ns / 1e6 for ns in self._painted["paint_ns"]]
        return result


def paint_main(display: str, width: int, height: int, fps: float, scene: str = "game") -> int:
    """The painter process: paint until SIGTERM, then print what landed when, as JSON."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    painter = Painter(display, width, height, fps, scene)
    try:
        print("painting", flush=True)
        while not stopping.is_set():
            painter.paint_next()
    finally:
        painter.close()
    json.dump({"landed": [[n, ns, ms] for n, (ns, ms) in painter.landed.items()],
               "paint_ns": painter.paint_ns}, sys.stdout)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", nargs="?", choices=["observe", "paint"], default="observe")
    parser.add_argument("--draw", required=True, help="X display to paint on (the host's)")
    parser.add_argument("--watch", help="X display to read (the client's)")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=float, default=60)
    parser.add_argument("--scene", choices=SCENES, default="game")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.mode == "paint":
        return paint_main(args.draw, width, height, args.fps, args.scene)
    with Observer(args.draw, args.watch or args.draw, width, height, args.fps,
                  args.scene) as observer:
        time.sleep(args.warmup)
        observer.measure_from_now()
        time.sleep(args.seconds)
        result = observer.result()
    json.dump(result.as_dict(), sys.stdout)
    print()
    return 0 if result.seen else 1


if __name__ == "__main__":
    raise SystemExit(main())
