"""The X11 input reader through the real session loops: every key, in order, only while focused.

Same stage as test_input_session_e2e.py (``rootstream host --input xtest`` on
Xvfb A, ``rootstream connect --present sdl`` on Xvfb B, xdotool playing the
user on B, an XRecorder on A), with XTEST typing much faster than a person
while the client keeps presenting.
"""

from __future__ import annotations

import shutil
import time

import pytest
from test_inject_xtest import XRecorder
from test_input_session_e2e import _settle, _until, keys
from test_input_session_e2e import stage as stage  # noqa: F401 - the fixture

from rootstream.input.inject_xtest import XTestInjector
from rootstream.protocol.input import KeyEvent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("xdotool") is None, reason="apt install xdotool"),
    pytest.mark.skipif(shutil.which("xset") is None, reason="apt install x11-xserver-utils"),
]

TYPED = [30, 48, 46, 32, 18, 33, 34, 35, 23, 36, 37, 38]  # evdev a..l


def test_fast_typing_reaches_the_host_complete_and_in_order(stage):  # noqa: F811
    player, recorder, switch, client, host = stage
    typist = XTestInjector(display=player.env["DISPLAY"])
    sent = []
    try:
        for round_ in range(5):
            for code in TYPED:
                for down in (True, False):
                    typist.inject(KeyEvent(code, down))
                    sent.append((down, code + 8))
            time.sleep(0.01 * round_)  # some together, some apart
    finally:
        typist.close()
    typed = _until(recorder, lambda seen: len(keys(seen)) >= len(sent), timeout=10)
    assert [(down, code) for down, code, _ in keys(typed)] == sent
    assert _settle(recorder) == []  # nothing extra: no repeat, no double


def test_keys_typed_into_another_window_never_reach_the_host(stage):  # noqa: F811
    player, recorder, switch, client, host = stage
    other = XRecorder(player.env["DISPLAY"], 200, 200)  # takes the client display's focus
    typist = XTestInjector(display=player.env["DISPLAY"])
    try:
        typist.inject(KeyEvent(30, True))
        typist.inject(KeyEvent(30, False))
        assert len(keys(other.collect(2, timeout=3))) == 2  # the other window got them
        assert keys(_settle(recorder, 0.5)) == []
        player("windowfocus", "--sync", player.window)  # back to the client
        typist.inject(KeyEvent(48, True))
        typist.inject(KeyEvent(48, False))
        back = _until(recorder, lambda seen: len(keys(seen)) >= 2)
        assert [(down, code) for down, code, _ in keys(back)] == [(True, 56), (False, 56)]
    finally:
        typist.close()
        other.close()
