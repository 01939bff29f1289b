"""The input path end to end, without the session loops: two X displays, one UDP socket.

Client display: the real SDL presenter showing a 1280x720 stream in a 640x360
window, with SdlInputCapture attached; xdotool plays the user.  Each batch the
capture sends becomes a ROOT INPUT datagram on a real loopback UDP socket.
Host display: the datagrams are verified, decoded and applied by an
InputSession over the xtest injector, and a real X client (XRecorder) on the
host display records what arrives.
"""

from __future__ import annotations

import socket
import subprocess
import time

import pytest
from test_inject_xtest import XRecorder

from rootstream.input import InputSession, open_injector
from rootstream.input.sdl_capture import SdlInputCapture
from rootstream.protocol.header import PacketType, decode_datagram, encode_datagram
from rootstream.protocol.input import encode_input


def buttons(events: list[tuple]) -> list[tuple]:
    return [event for event in events if event[0] == "button"]


@pytest.fixture
def link():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        yield sender, receiver
    finally:
        sender.close()
        receiver.close()


def test_keys_and_mouse_from_client_window_reach_a_host_application(xvfb_factory, monkeypatch,
                                                                     link):
    from rootstream.present import open_presenter

    client_x, host_x = xvfb_factory(800, 600), xvfb_factory(1280, 720)
    sender, receiver = link
    sequence = iter(range(1, 1 << 16))

    def send(events):  # what the client loop will do: one datagram per batch, at once
        datagram = encode_datagram(PacketType.INPUT, next(sequence),
                                   time.monotonic_ns() // 1_000_000, encode_input(events))
        sender.sendto(datagram, receiver.getsockname())

    recorder = XRecorder(host_x.display, host_x.width, host_x.height)
    session = InputSession(open_injector("xtest", display=host_x.display))

    def host_receive() -> None:
        while True:
            try:
                data = receiver.recv(2048)
            except BlockingIOError:
                return
            header, payload = decode_datagram(data)
            assert header.ptype == PacketType.INPUT
            session.apply_payload(payload, header.sequence)

    monkeypatch.setenv("DISPLAY", client_x.display)
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    try:
        with open_presenter("sdl", width=1280, height=720, renderer="software",
                            window_size=(640, 360)) as presenter:
            capture = SdlInputCapture.attach(presenter, send, gamepads=False)
            window = str(presenter.x11_window)

            def run(*args: str, until=None, seconds: float = 0.2) -> list[tuple]:
                subprocess.run(["xdotool", *args], env=client_x.env(), check=True, timeout=10)
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    presenter.poll_events()
                    host_receive()
                    time.sleep(0.005)
                return recorder.collect(0, timeout=0.1)

            run("sleep", "0.1")
            run("windowfocus", "--sync", window)
            run("mousemove", "--window", window, "0", "0")
            recorder.collect(0, timeout=0.1)
            # The window shows the whole stream at half size: window (100, 50)
            # is stream (201, 101), host screen (201, 101).
            assert run("mousemove", "--window", window, "100", "50")[-1] == ("motion", 201, 101)
            # A click carries its position, so the host may see a motion first.
            assert buttons(run("click", "1")) == [("button", True, 1), ("button", False, 1)]
            assert buttons(run("click", "4")) == [("button", True, 4), ("button", False, 4)]
            typed = (run("key", "a") + run("keydown", "shift") + run("key", "b")
                     + run("keyup", "shift"))
            assert [(down, text) for kind, down, _, text in typed if kind == "key"] == [
                (True, "a"), (False, "a"), (True, ""), (True, "B"), (False, "B"), (False, "")]
            capture.close()
        assert session.injector.held_keys == set() and session.injector.held_buttons == set()
        assert session.counters["malformed_dropped"] == 0
    finally:
        session.close()
        recorder.close()
