"""The Wayland clipboard (wlr data-control) against a real sway, with wl-clipboard as the
other application.

sway runs alone on its headless backend (tests/wayland_desktop.py); wl-copy
and wl-paste are what a user of a wlroots desktop copies and pastes with.
The protocol tables of rootstream.clipboard.wayland_protocol are written by
hand (Debian 12 does not package wlr-protocols): these tests are what pins
them, by driving the real compositor with them, and the struct layouts are
pinned against libwayland's headers.  Then the whole path: a host on sway, a
client on Xvfb (ClipboardService on each, joined by the real encoded CONTROL
messages), both ways, 1 MiB + 1 byte refused, nothing echoed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
from abi_check import layouts
from clipboard_scenarios import (
    both_ways_once,
    large_text_then_one_byte_too_many,
    service_pair,
    wait_for,
)
from test_clipboard_session import cross_a_real_session
from test_clipboard_x11 import copy as x11_copy
from test_clipboard_x11 import paste as x11_paste
from wayland_desktop import WaylandDesktop

from rootstream.clipboard import wayland_protocol as wp
from rootstream.clipboard.transfer import MAX_TEXT
from rootstream.clipboard.wayland import WaylandClipboard

pytestmark = pytest.mark.skipif(
    shutil.which("wl-copy") is None and os.environ.get("CI") != "true",
    reason="wl-clipboard is not installed (scripts/setup.sh installs it)")


@pytest.fixture
def sway(monkeypatch):
    desktop = WaylandDesktop(320, 200).start_compositor()  # fails the test if sway fails
    try:
        monkeypatch.delenv("DISPLAY", raising=False)
        for key in ("XDG_RUNTIME_DIR", "WAYLAND_DISPLAY"):
            monkeypatch.setenv(key, desktop.env[key])
        yield desktop
    finally:
        desktop.stop()


def wl_copy(desktop, data: bytes, mime: str = "text/plain;charset=utf-8") -> None:
    # wl-copy forks a child that serves the selection until another client takes it.
    subprocess.run(["wl-copy", "--type", mime], input=data, env=desktop.env, check=True,
                   timeout=10)


def wl_paste(desktop) -> bytes:
    return subprocess.run(["wl-paste", "--no-newline"], env=desktop.env, capture_output=True,
                          timeout=10).stdout


def test_struct_layouts_match_libwayland_headers(tmp_path):
    ours, native = layouts(wp.ffi, ("struct wl_message", "struct wl_interface",
                                    "union wl_argument"), ["wayland-util.h"], tmp_path)
    assert ours == native


def test_every_message_names_an_interface_for_each_object_argument():
    letters = set("iufsonah")
    for interface, (requests, events) in wp.PROTOCOL.items():
        for name, signature, types in requests + events:
            arguments = [c for c in signature if c in letters]
            assert len(arguments) == len(types), (interface, name)
            for letter, type_name in zip(arguments, types, strict=True):
                assert (type_name is not None) == (letter in "no"), (interface, name)


def test_copies_are_seen_pastes_are_served_and_our_own_is_never_reported(sway):
    wl_copy(sway, b"there before we came")
    seen: list[bytes] = []
    clipboard = WaylandClipboard(None, seen.append, MAX_TEXT)
    try:
        wl_copy(sway, "copied in sway ✓".encode())
        assert wait_for(lambda: seen == ["copied in sway ✓".encode()]), clipboard.counters
        clipboard.set_text(b"pasted by rootstream")
        assert wait_for(lambda: wl_paste(sway) == b"pasted by rootstream")
        wl_copy(sway, b"\x89PNG not text", mime="image/png")
        assert wait_for(lambda: clipboard.counters["not_text"] == 1), clipboard.counters
        time.sleep(0.3)
        # The selection found at start is not a change, our own is not one either.
        assert seen == ["copied in sway ✓".encode()]
        assert clipboard.counters["own_selection"] == 1
        assert clipboard.counters["handler_errors"] == 0
    finally:
        clipboard.close()


def test_waiting_for_a_copy_never_wakes_the_thread(sway):
    """No polling: with nothing copied, the thread sleeps in select() and is never woken."""
    clipboard = WaylandClipboard(None, lambda data: None, MAX_TEXT)
    status = f"/proc/self/task/{clipboard._thread.native_id}/status"

    def switches() -> int:
        with open(status) as lines:
            return sum(int(line.split()[1]) for line in lines
                       if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt")))

    try:
        time.sleep(0.2)  # let it settle into select()
        before = switches()
        time.sleep(1.5)
        assert switches() == before
        wl_copy(sway, b"a copy wakes it")
        assert wait_for(lambda: switches() > before)
    finally:
        clipboard.close()


def test_the_compositor_going_away_ends_the_watcher_quietly(sway):
    clipboard = WaylandClipboard(None, lambda data: None, MAX_TEXT)
    try:
        sway.kill("sway")
        assert wait_for(lambda: clipboard.counters["connection_lost"] == 1)
        clipboard.set_text(b"nowhere to go")  # no exception, no hang
    finally:
        clipboard.close()
    assert not clipboard._thread.is_alive()


def test_without_a_usable_wayland_clipboard_x11_is_used_and_the_log_says_why(
        sway, xvfb_factory, monkeypatch):
    from rootstream.clipboard.desktop import open_desktop_clipboard
    from rootstream.clipboard.x11 import X11Clipboard

    x = xvfb_factory(320, 200)
    monkeypatch.setenv("DISPLAY", x.display)
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-nobody")
    logs: list[str] = []
    watcher = open_desktop_clipboard(None, lambda data: None, MAX_TEXT, log=logs.append)
    watcher.close()
    assert isinstance(watcher, X11Clipboard)
    assert logs == ["rootstream: clipboard: X11 (cannot connect to the Wayland display "
                    "wayland-nobody for the clipboard)"]


def test_doctor_says_which_clipboard_is_shared_and_why(sway, xvfb_factory, monkeypatch):
    from rootstream.clipboard import probe_clipboard

    monkeypatch.setenv("DISPLAY", xvfb_factory(320, 200).display)
    rows = {name: (ok, reason) for name, ok, reason in probe_clipboard()}
    assert rows["wayland"] == (True, "wlr data-control on $WAYLAND_DISPLAY: --clipboard uses it")
    assert rows["x11"] == (True, "not used: the Wayland clipboard is")
    monkeypatch.delenv("WAYLAND_DISPLAY")
    rows = {name: (ok, reason) for name, ok, reason in probe_clipboard()}
    assert rows["wayland"][0] is False and "not a Wayland session" in rows["wayland"][1]
    assert rows["x11"] == (True, "XFIXES selection events on this display: --clipboard uses it")


@pytest.fixture
def desks(sway, xvfb_factory):
    b = xvfb_factory(320, 200)
    # The host names no display: it shares the session's clipboard, sway's.
    with service_pair(None, b.display) as (host, client, logs):
        yield sway, b, host, client, logs


def test_wayland_host_and_x11_client_share_both_ways_once(desks):
    sway, b, host, client, logs = desks
    both_ways_once(host, client, lambda text: wl_copy(sway, text), lambda: wl_paste(sway),
                   lambda text: x11_copy(b, text), lambda: x11_paste(b))
    assert "rootstream: clipboard: Wayland (wlr data-control)" in logs


def test_one_mib_crosses_and_one_byte_more_is_refused_with_a_message(desks):
    sway, b, host, client, logs = desks
    large_text_then_one_byte_too_many(host, client, logs, lambda text: wl_copy(sway, text),
                                      lambda: x11_paste(b))


@pytest.mark.slow
def test_a_real_host_on_sway_and_a_real_client_on_x11_share_both_ways(sway, tmp_path, udp_port,
                                                                      xvfb_factory, monkeypatch):
    b = xvfb_factory(320, 200)
    host = cross_a_real_session(tmp_path, udp_port, monkeypatch, sway.env, b,
                                lambda text: wl_copy(sway, text), lambda: wl_paste(sway))
    assert "clipboard: Wayland (wlr data-control)" in host.log()
