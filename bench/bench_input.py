"""Input path costs: the INPUT codec and XTEST injection.

- ``codec``: encode + decode of a typical datagram of 3 events (a click with
  its position and a held modifier: AbsoluteMotion, ButtonEvent, KeyEvent).
  Named baselines, same events, same run: ``struct-naive`` packs and unpacks
  the same fields with one ``struct.pack`` per event and no validation (the
  floor for any binary encoding in Python), ``json`` dumps and loads them as a
  list of dicts (what a quick text protocol would do).
- ``xtest``: one key event injected through XTestInjector on Xvfb (held-state
  bookkeeping, keycode lookup, XTestFakeKeyEvent, XFlush), against the bare
  cffi call pair XTestFakeKeyEvent + XFlush.  ``-sync`` variants wait for the
  server to have processed the event (XSync), the cost a round trip adds.

Run: ``pytest bench/bench_input.py --benchmark-only``; the summary at the end
lists median and p99 and the ratios against each baseline.
"""

from __future__ import annotations

import json
import struct

import pytest
from conftest import XvfbDisplay

from rootstream.input.inject_xtest import XTestInjector
from rootstream.protocol.input import (
    AbsoluteMotion,
    ButtonEvent,
    KeyEvent,
    decode_input,
    encode_input,
)

KEY_A = 30
EVENTS = [AbsoluteMotion(640, 360, 1280, 720), ButtonEvent(0x110, True), KeyEvent(42, True)]

RATIOS = [
    ("codec vs struct floor", "codec", "struct-naive"),
    ("codec vs json", "codec", "json"),
    ("xtest inject vs bare call", "xtest", "xtest-bare"),
    ("xtest inject+sync vs bare+sync", "xtest-sync", "xtest-bare-sync"),
]


def summary_lines(results: dict[tuple, tuple[float, float]]) -> list[str]:
    """Read by bench/conftest.py's bench_summary at the end of the module."""
    medians = {key[0]: median for key, (median, _) in results.items()}
    lines = ["", "input path: median / p99"]
    lines += [f"  {key[0]:16} {median * 1e6:9.2f} us / {p99 * 1e6:9.2f} us"
              for key, (median, p99) in results.items()]
    lines += [f"  {label}: {medians[subject] / medians[baseline]:.2f}x"
              for label, subject, baseline in RATIOS
              if subject in medians and baseline in medians]
    return lines


@pytest.fixture(scope="module")
def display():
    with XvfbDisplay(1280, 720) as server:
        yield server.display


# -- codec -------------------------------------------------------------------

_NAIVE_ABS = struct.Struct("!BHHHH")
_NAIVE_KEY = struct.Struct("!BHB")


def naive_roundtrip(events):
    """The same bytes, packed field by field with no checks, then unpacked."""
    a, b, k = events
    payload = (b"\x03" + _NAIVE_ABS.pack(5, a.x, a.y, a.width, a.height)
               + _NAIVE_KEY.pack(2, b.code, b.down) + _NAIVE_KEY.pack(1, k.code, k.down))
    _, x, y, w, h = _NAIVE_ABS.unpack_from(payload, 1)
    _, bc, bd = _NAIVE_KEY.unpack_from(payload, 10)
    _, kc, kd = _NAIVE_KEY.unpack_from(payload, 14)
    return [AbsoluteMotion(x, y, w, h), ButtonEvent(bc, bool(bd)), KeyEvent(kc, bool(kd))]


def json_roundtrip(events):
    a, b, k = events
    text = json.dumps([{"t": "abs", "x": a.x, "y": a.y, "w": a.width, "h": a.height},
                       {"t": "btn", "c": b.code, "d": b.down},
                       {"t": "key", "c": k.code, "d": k.down}]).encode()
    m, n, o = json.loads(text)
    return [AbsoluteMotion(m["x"], m["y"], m["w"], m["h"]), ButtonEvent(n["c"], n["d"]),
            KeyEvent(o["c"], o["d"])]


def codec_roundtrip(events):
    return decode_input(encode_input(events))


@pytest.mark.parametrize("name,roundtrip", [("codec", codec_roundtrip),
                                            ("struct-naive", naive_roundtrip),
                                            ("json", json_roundtrip)])
def test_codec_3_events(benchmark, bench_summary, name, roundtrip):
    assert roundtrip(EVENTS) == EVENTS
    assert naive_roundtrip(EVENTS) == EVENTS and len(encode_input(EVENTS)) == 18
    benchmark.pedantic(roundtrip, args=(EVENTS,), rounds=20000, iterations=1, warmup_rounds=200)
    bench_summary.record(benchmark, name)


# -- xtest injection -----------------------------------------------------------

@pytest.mark.parametrize("sync", [False, True], ids=["flush", "sync"])
def test_xtest_inject_one_event(benchmark, bench_summary, display, sync):
    with XTestInjector(display=display) as injector:
        events = [KeyEvent(KEY_A, True), KeyEvent(KEY_A, False)]
        state = {"i": 0}

        def one_event():
            state["i"] ^= 1
            injector.inject(events[state["i"] ^ 1])
            if sync:
                injector.sync()

        benchmark.pedantic(one_event, rounds=4000, iterations=1, warmup_rounds=50)
        bench_summary.record(benchmark, "xtest-sync" if sync else "xtest")


@pytest.mark.parametrize("sync", [False, True], ids=["flush", "sync"])
def test_xtest_bare_call(benchmark, bench_summary, display, sync):
    with XTestInjector(display=display) as injector:
        x11, xtst, dpy = injector._x11, injector._xtst, injector._dpy
        keycode = KEY_A + 8
        state = {"down": 0}

        def one_event():
            state["down"] ^= 1
            xtst.XTestFakeKeyEvent(dpy, keycode, state["down"], 0)
            x11.XFlush(dpy)
            if sync:
                x11.XSync(dpy, 0)

        benchmark.pedantic(one_event, rounds=4000, iterations=1, warmup_rounds=50)
        if state["down"]:
            xtst.XTestFakeKeyEvent(dpy, keycode, 0, 0)
        bench_summary.record(benchmark, "xtest-bare-sync" if sync else "xtest-bare")
