"""Input latency measured from outside: a key typed into the client's window -> the host's app.

Unlike bench_input_latency.py (which starts when the client has already read
the event), nothing here looks inside rootstream.  Two Xvfb displays on this
machine: B shows the client's window (``rootstream connect``), A is the
host's desktop (``rootstream host --input xtest``).

- the typist: an X client of ours on B that presses and releases keys,
  moves the pointer and clicks (after every third move) with XTEST at random
  moments (10-40 ms apart, so the phase against
  the client's frames is random), stamping each request as it is flushed;
- the recorder: an X client of ours on A, a focused full-screen window,
  stamping each KeyPress/KeyRelease/ButtonPress/ButtonRelease/MotionNotify the moment its connection
  becomes readable (its own thread, blocked in poll);
- one clock: both stamp with time.monotonic_ns() in this process.

Keys and clicks are matched in order (the n-th key event typed is the n-th
recorded; "in order" counts only an exact sequence), motions by position (every move
goes to a new random point, mapped 1:1: the stream, both screens and the
window have one size).

Scenes: ``still`` (--source x11 of an idle desktop: nothing changes),
``moving`` (the test pattern, every frame new, 1280x720@60) and ``1080p60``
(the test pattern at 1920x1080@60); each with every presenter that reads
input.  Run ``python bench/bench_input_outside.py`` (``--scenes``,
``--presenters``, ``--keys``, ``--rounds``) or
``python -m pytest bench/bench_input_outside.py -s``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from cffi import FFI
from conftest import Spawned, XvfbDisplay, free_udp_port, machine_lines

SCENES = {  # name -> (source, width, height)
    "still": ("x11", 1280, 720),
    "moving": ("test", 1280, 720),
    "1080p60": ("test", 1920, 1080),
}
PRESENTERS = ("sdl", "x11")
KEYCODES = [38, 56, 54, 40, 26, 41, 42, 43, 31, 44, 45, 46]  # a b c d e f g h i j k l
GAP_S = (0.010, 0.040)

_ffi = FFI()
_ffi.cdef("""
typedef struct _XDisplay Display;
typedef unsigned long Window;
typedef union { int type; long pad[24]; } XEvent;
typedef struct { int type; unsigned long serial; int send_event; Display *display;
                 Window window, root, subwindow; unsigned long time; int x, y, x_root, y_root;
                 unsigned int state, detail; int same_screen; } XInputEvent;
Display *XOpenDisplay(const char *name);
int XCloseDisplay(Display *dpy);
int XConnectionNumber(Display *dpy);
Window XDefaultRootWindow(Display *dpy);
Window XCreateSimpleWindow(Display *dpy, Window parent, int x, int y, unsigned int w,
                           unsigned int h, unsigned int bw, unsigned long b, unsigned long bg);
int XSelectInput(Display *dpy, Window w, long mask);
int XMapRaised(Display *dpy, Window w);
int XSetInputFocus(Display *dpy, Window w, int revert, unsigned long time);
int XSync(Display *dpy, int discard);
int XFlush(Display *dpy);
int XPending(Display *dpy);
int XNextEvent(Display *dpy, XEvent *event);
int XTestFakeKeyEvent(Display *dpy, unsigned int keycode, int is_press, unsigned long delay);
int XTestFakeMotionEvent(Display *dpy, int screen, int x, int y, unsigned long delay);
int XTestFakeButtonEvent(Display *dpy, unsigned int button, int is_press, unsigned long delay);
""")
_KEY_PRESS, _KEY_RELEASE, _BUTTON_PRESS, _BUTTON_RELEASE, _MOTION, _MAP = 2, 3, 4, 5, 6, 19
_MASK = 1 | 2 | 4 | 8 | (1 << 6) | (1 << 17)  # keys, buttons, pointer motion, structure
CLICK_EVERY = 3  # one left click after every third move


class Recorder:
    """A focused full-screen window on the host's display; its thread stamps arrivals."""

    def __init__(self, display: str, width: int, height: int):
        self.x11 = _ffi.dlopen("libX11.so.6")
        self.dpy = self.x11.XOpenDisplay(display.encode())
        assert self.dpy != _ffi.NULL, display
        root = self.x11.XDefaultRootWindow(self.dpy)
        self.window = self.x11.XCreateSimpleWindow(self.dpy, root, 0, 0, width, height, 0, 0, 0)
        self.x11.XSelectInput(self.dpy, self.window, _MASK)
        self.x11.XMapRaised(self.dpy, self.window)
        self.x11.XSync(self.dpy, False)
        self.events: list[tuple] = []  # (ns, kind, a, b)
        self._mapped = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()
        assert self._mapped.wait(5), "the recorder's window was never mapped"
        self.x11.XSetInputFocus(self.dpy, self.window, 2, 0)
        self.x11.XSync(self.dpy, False)

    def _run(self) -> None:
        fd = self.x11.XConnectionNumber(self.dpy)
        event = _ffi.new("XEvent *")
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not self._stop.is_set():
            if not self.x11.XPending(self.dpy):
                poller.poll(50)
            now = time.monotonic_ns()  # the moment the events became readable
            while self.x11.XPending(self.dpy):
                self.x11.XNextEvent(self.dpy, event)
                e = _ffi.cast("XInputEvent *", event)
                if e.type in (_KEY_PRESS, _KEY_RELEASE):
                    self.events.append((now, "key", e.detail, e.type == _KEY_PRESS))
                elif e.type in (_BUTTON_PRESS, _BUTTON_RELEASE):
                    self.events.append((now, "button", e.detail, e.type == _BUTTON_PRESS))
                elif e.type == _MOTION:
                    self.events.append((now, "motion", e.x, e.y))
                elif e.type == _MAP:
                    self._mapped.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.x11.XCloseDisplay(self.dpy)


class Typist:
    """XTEST on the client's display; stamps each request as it leaves."""

    def __init__(self, display: str):
        self.x11 = _ffi.dlopen("libX11.so.6")
        self.xtst = _ffi.dlopen("libXtst.so.6")
        self.dpy = self.x11.XOpenDisplay(display.encode())
        assert self.dpy != _ffi.NULL, display

    def key(self, keycode: int, down: bool) -> int:
        now = time.monotonic_ns()
        self.xtst.XTestFakeKeyEvent(self.dpy, keycode, down, 0)
        self.x11.XFlush(self.dpy)
        return now

    def button(self, button: int, down: bool) -> int:
        now = time.monotonic_ns()
        self.xtst.XTestFakeButtonEvent(self.dpy, button, down, 0)
        self.x11.XFlush(self.dpy)
        return now

    def move(self, x: int, y: int) -> int:
        now = time.monotonic_ns()
        self.xtst.XTestFakeMotionEvent(self.dpy, 0, x, y, 0)
        self.x11.XFlush(self.dpy)
        return now

    def close(self) -> None:
        self.x11.XCloseDisplay(self.dpy)


def _client_window(display: XvfbDisplay) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        # SDL's window has a class, the x11 presenter's a Latin-1 name.
        for how in (("--class", "."), ("--name", "rootstream")):
            found = subprocess.run(["xdotool", "search", "--onlyvisible", *how],
                                   env=display.env(), capture_output=True, text=True,
                                   timeout=10).stdout.split()
            if found:
                return found[0]
        time.sleep(0.1)
    raise RuntimeError("the client's window never appeared")


def play(typist: Typist, width: int, height: int, presses: int, rng) -> tuple[list, ...]:
    """Press/release/move/click at random moments; returns (keys, motions, clicks) as
    sent, stamped; keys and clicks as (ns, code or button, down)."""
    keys, motions, clicks = [], [], []
    last = None
    for i in range(presses):
        code = KEYCODES[i % len(KEYCODES)]
        for down in (True, False):
            time.sleep(rng.uniform(*GAP_S))
            keys.append((typist.key(code, down), code, down))
        time.sleep(rng.uniform(*GAP_S))
        where = last
        while where == last:  # every move a new point, inside the picture
            where = (rng.randrange(8, width - 8), rng.randrange(8, height - 8))
        last = where
        motions.append((typist.move(*where), *where))
        if i % CLICK_EVERY == CLICK_EVERY - 1:
            for down in (True, False):
                time.sleep(rng.uniform(*GAP_S))
                clicks.append((typist.button(1, down), 1, down))
    return keys, motions, clicks


def _in_order(sent, got) -> tuple[list[float], bool]:
    """Latencies of (ns, code, down) edges matched in order, and whether the sequence is exact."""
    ms, i = [], 0
    for sent_ns, code, down in sent:  # in order: the next one that matches
        while i < len(got) and got[i][1:] != (code, down):
            i += 1
        if i < len(got):
            ms.append((got[i][0] - sent_ns) / 1e6)
            i += 1
    return ms, [(c, d) for _, c, d in got] == [(c, d) for _, c, d in sent]


def match(keys, motions, recorded, clicks=()) -> dict:
    got_keys = [(ns, code, down) for ns, kind, code, down in recorded if kind == "key"]
    got_clicks = [(ns, code, down) for ns, kind, code, down in recorded if kind == "button"]
    got_moves = [(ns, x, y) for ns, kind, x, y in recorded if kind == "motion"]
    key_ms, exact = _in_order(keys, got_keys)
    click_ms, clicks_exact = _in_order(clicks, got_clicks)
    move_ms, j = [], 0
    for sent_ns, x, y in motions:
        k = j
        while k < len(got_moves) and got_moves[k][1:] != (x, y):
            k += 1
        if k < len(got_moves):
            move_ms.append((got_moves[k][0] - sent_ns) / 1e6)
            j = k + 1
    return {"keys_sent": len(keys), "keys_arrived": len(key_ms), "keys_in_order": exact,
            "keys_recorded": len(got_keys), "key_ms": key_ms,
            "motions_sent": len(motions), "motions_arrived": len(move_ms), "motion_ms": move_ms,
            "clicks_sent": len(clicks), "clicks_arrived": len(click_ms),
            "clicks_in_order": clicks_exact, "click_ms": click_ms}


ROOTSTREAM = [sys.executable, "-m", "rootstream_cli"]


def measure(scene: str, presenter: str, log_dir: Path, presses: int, seed: int,
            command: list[str] = ROOTSTREAM) -> dict:
    """One run; ``command`` starts the CLI (a diagnostic may wrap it to stamp inside)."""
    source, width, height = SCENES[scene]
    host_x, client_x = XvfbDisplay(width, height), XvfbDisplay(width, height)
    host = client = recorder = typist = None
    try:
        for display in (host_x, client_x):
            subprocess.run(["xset", "-display", display.display, "r", "off"], check=True,
                           timeout=10)
        recorder = Recorder(host_x.display, width, height)
        port = free_udp_port()
        host = Spawned(f"host-{scene}-{presenter}", [
            *command, "host", "--bind", "127.0.0.1",
            "--port", str(port), "--source", source, "--size", f"{width}x{height}",
            "--fps", "60", "--input", "xtest", "--audio", "none",
            "--stats-interval", "60"], log_dir, env=host_x.env())
        _wait_log(host, "listening on")
        client = Spawned(f"client-{scene}-{presenter}", [
            *command, "connect", f"127.0.0.1:{port}",
            "--present", presenter, "--seconds", "120", "--stats-interval", "60"],
            log_dir, env=client_x.env(SDL_VIDEODRIVER="x11"))
        # With --present auto the client may open an SDL window to ask which
        # renderer it gets, then close it: look only once the presenter is chosen.
        _wait_log(client, "showing with")
        window = _client_window(client_x)
        time.sleep(0.5)
        subprocess.run(["xdotool", "windowfocus", "--sync", window], env=client_x.env(),
                       check=True, timeout=10)
        time.sleep(2.0)  # the stream settles (first keyframe, decoder warm)
        typist = Typist(client_x.display)
        load = os.getloadavg()[0]
        keys, motions, clicks = play(typist, width, height, presses, random.Random(seed))
        time.sleep(0.5)
        result = match(keys, motions, list(recorder.events), clicks)
        result.update(scene=scene, presenter=presenter, load1=load, keys=keys,
                      recorded=list(recorder.events))
        return result
    finally:
        for part in (typist, recorder):
            if part is not None:
                part.close()
        for process in (client, host):
            if process is not None:
                process.stop()
        client_x.close()
        host_x.close()


def _wait_log(process: Spawned, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in process.log():
        if process.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{process.name} never printed {text!r}:\n{process.log()}")
        time.sleep(0.05)


def _p(values, q) -> str:
    return f"{np.percentile(values, q):.2f}" if values else "-"


def table(runs: list[dict]) -> list[str]:
    lines = ["| scene | presenter | key p50 | key p99 | keys arrived, in order | "
             "motion p50 | motion p99 | motions arrived | click p50 | click p99 | "
             "clicks arrived | load (1 min) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        order = ("in order" if r["keys_in_order"] else "NOT in order") if r["keys_arrived"] \
            else "none: this presenter captures no input"
        lines.append(
            f"| {r['scene']} | {r['presenter']} "
            f"| {_p(r['key_ms'], 50)} | {_p(r['key_ms'], 99)} "
            f"| {r['keys_arrived']}/{r['keys_sent']}, {order} | {_p(r['motion_ms'], 50)} "
            f"| {_p(r['motion_ms'], 99)} | {r['motions_arrived']}/{r['motions_sent']} "
            f"| {_p(r['click_ms'], 50)} | {_p(r['click_ms'], 99)} "
            f"| {r['clicks_arrived']}/{r['clicks_sent']}"
            f"{'' if r['clicks_in_order'] else ' NOT in order'} "
            f"| {r['load1']:.2f} |")
    return lines


def test_input_outside(tmp_path, request):
    runs = [measure(scene, "sdl", tmp_path, presses=30, seed=i)
            for i, scene in enumerate(SCENES)]
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n".join(table(runs)))
    for run in runs:
        assert run["keys_in_order"] and run["keys_arrived"] == run["keys_sent"]
        assert run["motions_arrived"] == run["motions_sent"]
        assert run["clicks_in_order"] and run["clicks_arrived"] == run["clicks_sent"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", default=",".join(SCENES))
    parser.add_argument("--presenters", default=",".join(PRESENTERS))
    parser.add_argument("--keys", type=int, default=60, help="presses per run (two events each)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", help="write every sample here")
    parser.add_argument("--logs", default="/tmp/bench_input_outside")
    args = parser.parse_args(argv)
    log_dir = Path(args.logs)
    log_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for _ in range(args.rounds):
        for scene in args.scenes.split(","):
            for presenter in args.presenters.split(","):
                runs.append(measure(scene, presenter, log_dir, args.keys, seed=len(runs)))
                print("\n".join(table(runs[-1:])[2:]), flush=True)
    print("\n".join(machine_lines()))
    print("\n".join(table(runs)))
    if args.json:
        Path(args.json).write_text(json.dumps(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
