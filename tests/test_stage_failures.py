"""A bug in any stage thread is said once and ends the session on both ends.

A real host and a real client stream the test pattern over loopback (x264,
the null presenter); one stage's real work is made to raise an exception no
loop expects after a few frames.  The stage must say which stage failed and
with what, once; the session must end at once on both sides (never a client
left receiving keepalives without pictures); the failing side reports it.
"""

from __future__ import annotations

import threading
import time

import pytest

from rootstream.capture.pattern import PatternCapture
from rootstream.client import Client, ClientOptions
from rootstream.client.control import HOST_FAILED
from rootstream.decode import VideoDecoder
from rootstream.host import Host, HostOptions
from rootstream.present.null import NullPresenter
from rootstream.session import PEER_TIMEOUT_S
from rootstream.stage import StageError

pytestmark = pytest.mark.slow


class Injected(Exception):
    """What the broken stage raises: no loop in rootstream expects it."""


def fail_after(real, calls: int):
    """``real`` for ``calls`` calls, then Injected forever."""
    count = 0

    def wrapper(*args, **kwargs):
        nonlocal count
        count += 1
        if count > calls:
            raise Injected(f"injected after {calls} calls")
        return real(*args, **kwargs)
    return wrapper


class Session:
    """One in-process host (max one session) and one client, with their logs."""

    def __init__(self, port: int):
        self.host_log: list[str] = []
        self.client_log: list[str] = []
        self.host = Host(HostOptions(source="test", size=(640, 360), fps=30, encoder="x264",
                                     bind="127.0.0.1", port=port, insecure=True,
                                     max_sessions=1, stats_interval=60),
                         log=self.host_log.append)
        self.client = Client(ClientOptions(host=("127.0.0.1", port), present="null",
                                           insecure=True, seconds=20, stats_interval=60,
                                           input=False, audio=False),
                             log=self.client_log.append)
        self._serving = threading.Thread(target=self.host.serve, name="serve")

    def run(self):
        """Stream until the session ends; (client result, seconds it took)."""
        self._serving.start()
        started = time.monotonic()
        try:
            result = self.client.run()
            took = time.monotonic() - started
            self._serving.join(10)
            assert not self._serving.is_alive(), "the host went on serving"
        finally:
            self.host.stop()
            self._serving.join(10)
            self.host.close()
        return result, took


def said(log: list[str], text: str) -> list[str]:
    return [line for line in log if text in line]


def assert_host_stage_failed(session: Session, stage: str) -> None:
    result, took = session.run()
    lines = said(session.host_log, f"the {stage} stage failed: Injected: injected after")
    assert len(lines) == 1, session.host_log  # once, naming the stage and the error
    failure = session.host.video.failure
    assert isinstance(failure, StageError) and failure.stage == stage
    # The client heard a bye saying so, well before it would have noticed silence.
    assert result.reason == HOST_FAILED, session.client_log
    assert said(session.client_log, "the host stopped streaming after an error")
    assert result.frames_presented > 0
    assert took < 20 - PEER_TIMEOUT_S


def assert_client_stage_failed(session: Session, stage: str) -> None:
    result, took = session.run()
    lines = said(session.client_log, f"the {stage} stage failed: Injected: injected after")
    assert len(lines) == 1, session.client_log
    assert isinstance(result.failure, StageError) and result.failure.stage == stage
    assert result.reason == str(result.failure)
    assert took < 20 - PEER_TIMEOUT_S  # it ended at once, not at --seconds
    # The host heard the client's bye (it did not wait out a silence) and, with
    # its one session over, stopped.
    assert said(session.host_log, "said bye"), session.host_log


def test_a_failing_capture_stage_ends_the_session(udp_port, monkeypatch):
    monkeypatch.setattr(PatternCapture, "grab", fail_after(PatternCapture.grab, 20))
    assert_host_stage_failed(Session(udp_port), "capture")


def test_a_failing_encode_stage_ends_the_session(udp_port):
    session = Session(udp_port)
    encoder = session.host.video.encoder
    encoder.encode = fail_after(encoder.encode, 20)
    assert_host_stage_failed(session, "encode")


def test_a_failing_sender_is_reported_as_the_encode_stage(udp_port):
    session = Session(udp_port)
    sender = session.host.video.sender
    sender.send_frame = fail_after(sender.send_frame, 20)
    assert_host_stage_failed(session, "encode")


def test_a_failing_receive_stage_ends_the_session(udp_port):
    session = Session(udp_port)
    receiver = session.client.receiver
    receiver.push = fail_after(receiver.push, 200)  # fragments, not frames
    assert_client_stage_failed(session, "receive")


def test_a_failing_decode_stage_ends_the_session(udp_port, monkeypatch):
    # Decoders are opened (and proved on a test frame) inside Client.run.
    monkeypatch.setattr(VideoDecoder, "decode", fail_after(VideoDecoder.decode, 20))
    assert_client_stage_failed(Session(udp_port), "decode")


def test_a_failing_present_stage_ends_the_session(udp_port, monkeypatch):
    monkeypatch.setattr(NullPresenter, "present", fail_after(NullPresenter.present, 20))
    assert_client_stage_failed(Session(udp_port), "present")


# -- the services' own threads (stage.ThreadGuard): a real failure, provoked -----------------


def test_a_sound_thread_that_fails_is_raised_from_tick_once():
    """The host's sound thread sends through a UDP socket that is closed under it
    (EBADF from sendto: no RootStreamError its loop expects).  The failure waits for
    the session loop's tick and is raised there once, naming the stage."""
    import socket

    from rootstream.audio.host_service import HostAudio
    from rootstream.protocol import Capability, Config
    from rootstream.session import SessionInfo

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.close()
    lines: list[str] = []
    service = HostAudio("test", log=lines.append)
    service.session_started(
        SessionInfo(("127.0.0.1", 9), 1, "peer", Config(), Capability.AUDIO),
        lambda ptype, payload: sock.sendto(b"x", ("127.0.0.1", 9)))
    deadline = time.monotonic() + 5
    while service.guard.failure is None and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(StageError, match="the sound stage failed: OSError") as raised:
        service.tick(time.monotonic_ns())
    assert raised.value.stage == "sound" and "bug in rootstream" in raised.value.hint
    service.tick(time.monotonic_ns())  # raised once: the loop that got it ends the session
    service.close()
    assert not [line for line in lines if "sound stopped" in line]  # not an expected stop


def test_a_clipboard_thread_that_fails_ends_the_clients_session(
        tmp_path, udp_port, xvfb_factory, monkeypatch):
    """A real host with --clipboard (Xvfb A) and a client sharing its clipboard
    (Xvfb B).  The client's clipboard watcher has its wake-up pipe closed under it:
    its select() fails with EBADF.  The client says so once, as the clipboard
    stage, and ends the session at once with a bye the host hears."""
    import os
    import shutil

    from session_helpers import HostProcess

    if shutil.which("xclip") is None and os.environ.get("CI") != "true":
        pytest.skip("xclip is not installed")
    host_x, client_x = xvfb_factory(320, 200), xvfb_factory(320, 200)
    host = HostProcess(udp_port, "--insecure", "--source", "test", "--size", "640x360",
                       "--fps", "10", "--bitrate", "1", "--input", "none", "--audio", "none",
                       "--clipboard", env=host_x.env(), log_dir=tmp_path)
    try:
        host.wait_for("listening on")
        monkeypatch.setenv("DISPLAY", client_x.display)
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
        log: list[str] = []
        client = Client(ClientOptions(host=("127.0.0.1", udp_port), present="null",
                                      insecure=True, input=False, audio=False, clipboard=True,
                                      seconds=30, stats_interval=60), log=log.append)
        outcome = {}
        runner = threading.Thread(target=lambda: outcome.update(result=client.run()))
        runner.start()
        clipboard = next(s for s in client.services if s.name == "clipboard")
        deadline = time.monotonic() + 20
        while clipboard._desktop is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert clipboard._desktop is not None, log
        started = time.monotonic()
        os.close(clipboard._desktop._wake_read)
        runner.join(15)
        assert not runner.is_alive(), log
        result = outcome["result"]
        assert isinstance(result.failure, StageError) and result.failure.stage == "clipboard"
        lines = said(log, "the clipboard stage failed: OSError")
        assert len(lines) == 1, log
        assert time.monotonic() - started < 5  # at once, not at --seconds
        host.wait_for("said bye")
    finally:
        host.stop()


def test_a_host_clipboard_thread_that_fails_ends_the_hosts_session(
        tmp_path, udp_port, xvfb_factory, monkeypatch):
    """The host's side of the same: an in-process host showing and sharing Xvfb A,
    a real client sharing B's.  The host's watcher loses its wake-up pipe; the
    host's loop raises the clipboard stage's failure from serve(), says bye to the
    client, which ends at once, and serve() is over (the command would print the
    sentence and exit non-zero)."""
    import os

    host_x, client_x = xvfb_factory(320, 200), xvfb_factory(320, 200)
    host_log: list[str] = []
    # The host watches Xvfb A (its capture and clipboard both name it), the client B.
    host = Host(HostOptions(source="x11", fps=30, encoder="x264",
                            bind="127.0.0.1", port=udp_port, insecure=True, stats_interval=60,
                            clipboard=True, display=host_x.display, audio="none"),
                log=host_log.append)
    raised = {}

    def serve():
        try:
            host.serve()
        except StageError as exc:
            raised["error"] = exc

    serving = threading.Thread(target=serve)
    serving.start()
    monkeypatch.setenv("DISPLAY", client_x.display)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    client_log: list[str] = []
    client = Client(ClientOptions(host=("127.0.0.1", udp_port), present="null", insecure=True,
                                  input=False, audio=False, clipboard=True, seconds=30,
                                  stats_interval=60), log=client_log.append)
    outcome = {}
    running = threading.Thread(target=lambda: outcome.update(result=client.run()))
    running.start()
    try:
        clipboard = next(s for s in host.services if s.name == "clipboard")
        deadline = time.monotonic() + 20
        while clipboard._desktop is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert clipboard._desktop is not None, host_log
        started = time.monotonic()
        os.close(clipboard._desktop._wake_read)
        serving.join(10)
        assert not serving.is_alive(), host_log
        error = raised.get("error")
        assert isinstance(error, StageError) and error.stage == "clipboard", host_log
        assert "the clipboard stage failed: OSError" in str(error)
        running.join(10)
        assert not running.is_alive(), client_log
        assert time.monotonic() - started < 8  # at once, not at --seconds
        # An error bye, not the bye of a host merely stopped.
        assert outcome["result"].reason == HOST_FAILED, client_log
    finally:
        client.stop()
        running.join(10)
        host.stop()
        serving.join(10)
        host.close()
