"""Many viewers, one encode (`host --viewers N`), end to end on loopback.

Real processes and real sockets, every session encrypted with its own keys:
the host captures its own Xvfb display, and each viewer's real SDL window on
a display of its own shows the colour painted there; a client past the
limit is told the host is full.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time

import pytest
from session_helpers import (
    HostProcess,
    SdlClient,
    paint_root,
    probe_result,
    probe_viewer,
    rootstream_command,
    wait_for_colour,
)

from rootstream.client import Client, ClientOptions
from rootstream.crypto.client_keys import ClientKeys
from rootstream.errors import RootStreamError
from rootstream.protocol import PacketType, decode_datagram, encode_datagram
from rootstream.testing.impair import Impairment, LossyRelay

# xsetroot (scripts/setup.sh installs it) paints the host's display; a
# missing one fails the test rather than skipping it.
pytestmark = pytest.mark.slow


def _looks(colour, want_bgr) -> bool:
    return all(abs(float(c) - w) < 60 for c, w in zip(colour, want_bgr, strict=True))


def test_three_viewers_each_show_the_hosts_colours_and_a_fourth_is_told_full(
        xvfb_factory, tmp_path, udp_port):
    host_display = xvfb_factory(640, 480)
    paint_root(host_display.display, "#ff0000")
    host = HostProcess(udp_port, "--source", "x11", "--fps", "30", "--bitrate", "2",
                       "--viewers", "3", "--audio", "none", "--input", "none",
                       env=host_display.env(), log_dir=tmp_path)
    clients = []
    try:
        host.wait_for("listening on")
        displays = [xvfb_factory(640, 480) for _ in range(3)]
        for number, display in enumerate(displays, start=1):
            clients.append(SdlClient(udp_port, display, seconds=40))
            host.wait_for(f"{number} watching")
        for display in displays:
            red = wait_for_colour(display.display, (0, 0, 255))
            assert _looks(red, (0, 0, 255)), f"{display.display} shows {red} (BGR)"
        # The fourth client gets one small refusal and says why.
        full = subprocess.run(
            rootstream_command("connect", f"127.0.0.1:{udp_port}", "--present", "null",
                               "--frames", "5", "--no-audio"),
            capture_output=True, text=True, timeout=30)
        assert full.returncode != 0
        assert "the host is full" in full.stderr, full.stderr
        assert "--viewers" in full.stderr  # the hint says what to do
        # A change on the host's screen reaches every viewer: one capture, one encode.
        paint_root(host_display.display, "#0000ff")
        for display in displays:
            blue = wait_for_colour(display.display, (255, 0, 0))
            assert _looks(blue, (255, 0, 0)), f"{display.display} shows {blue} (BGR)"
    finally:
        errors = [client.stop() for client in clients]
        host.stop()
    assert not any("Traceback" in err for err in errors), errors
    log = host.log()
    assert "3 watching" in log and "refused_full=1" in log, log


def _pattern_host(port: int, tmp_path, *args: str) -> HostProcess:
    host = HostProcess(port, "--source", "test", "--size", "640x360", "--fps", "30",
                       "--bitrate", "2", "--audio", "none", "--input", "none", *args,
                       log_dir=tmp_path)
    host.wait_for("listening on")
    return host


def _keyframes_sent(host: HostProcess) -> int:
    """IDRs the host has put on the wire so far (its latest report)."""
    counts = [int(n) for n in re.findall(r"keyframes_sent=(\d+)", host.log())]
    return counts[-1] if counts else 0


def test_a_lossy_viewer_and_a_killed_one_cost_the_healthy_viewers_no_frames(tmp_path,
                                                                           udp_port):
    host = _pattern_host(udp_port, tmp_path, "--viewers", "4")
    relay = LossyRelay(upstream=("127.0.0.1", udp_port), to_client=Impairment(loss=0.10),
                       to_host=Impairment(loss=0.10), seed=5)
    try:
        with relay:
            healthy = [probe_viewer(udp_port, 8) for _ in range(2)]
            host.wait_for("2 watching")
            lossy = probe_viewer(relay.address[1], 6)  # its datagrams pass the relay both ways
            host.wait_for("3 watching")
            doomed = probe_viewer(udp_port, 30)
            host.wait_for("4 watching")
            time.sleep(1.5)
            doomed.send_signal(signal.SIGKILL)  # no bye: the host must notice the silence
            doomed.communicate(timeout=10)
            seen = [probe_result(probe) for probe in healthy]
            lossy_seen = probe_result(lossy)
        host.wait_for("went silent; the others go on")
    finally:
        host.stop()
    for got in seen:
        # Every frame the host sent the viewer from its first picture on was
        # shown, whatever the others did.
        assert got["sent_since_first"] > 7 * 30 * 0.8, got
        assert got["presented"] >= 0.98 * got["sent_since_first"], got
        assert got["intact"], got
    # The lossy viewer kept watching, with intact pictures only.
    assert relay.counters["to_client"].dropped > 0
    assert lossy_seen["presented"] > 0 and lossy_seen["intact"], lossy_seen


def test_a_viewer_joining_mid_stream_waits_for_a_refresh_cycle_not_a_keyframe(tmp_path,
                                                                            udp_port):
    host = _pattern_host(udp_port, tmp_path, "--viewers", "2", "--refresh-ms", "200")
    try:
        first = probe_viewer(udp_port, 7)
        host.wait_for("1 watching")
        time.sleep(2.5)  # the first viewer is streaming; its start-up keyframes are out
        before = _keyframes_sent(host)
        joining = probe_result(probe_viewer(udp_port, 3))
        watching = probe_result(first)
        time.sleep(1.2)  # one more host report
    finally:
        host.stop()
    # The joining viewer showed intact pictures, starting at a refresh cycle...
    assert joining["presented"] > 30, joining
    assert joining["intact"] and joining["resumed_at_refresh"] >= 1, joining
    assert joining["keyframes_received"] == 0, joining
    # ...and not one keyframe left the host for the join (counted as they go on
    # the wire), so the viewer already watching received none after its own.
    assert before >= 1 and _keyframes_sent(host) == before, host.log()
    assert watching["keyframes_received"] <= before, watching
    assert watching["presented"] >= 0.98 * watching["sent_since_first"], watching
    assert re.search(r"refresh_cycles=\d+", host.log())
    assert "idr_deferred=" in host.log()  # the joiner asked; the host left it to the sweep


def test_a_later_viewer_asking_other_settings_is_refused_with_a_message(tmp_path, udp_port):
    """A bench phase that needs another frame rate while others watch would
    measure the wrong stream: it is told so instead."""
    host = _pattern_host(udp_port, tmp_path, "--viewers", "2")
    try:
        first = probe_viewer(udp_port, 6)
        host.wait_for("1 watching")
        bench = Client(ClientOptions(host=("127.0.0.1", udp_port), present="null", seconds=3,
                                     want_fps=60, audio=False, input=False),
                       log=lambda line: None)
        with pytest.raises(RootStreamError, match="other settings"):
            bench.run()
        # Asking nothing in particular, a later viewer gets what is streamed.
        plain = probe_result(probe_viewer(udp_port, 2))
        watching = probe_result(first)
    finally:
        host.stop()
    assert plain["presented"] > 0 and watching["presented"] > 0
    assert "asked for other settings than the 640x360@30" in host.log()


def test_the_full_refusal_is_three_bytes_once_never_more_than_the_init(tmp_path, udp_port):
    host = _pattern_host(udp_port, tmp_path, "--viewers", "2")
    watchers = []
    try:
        watchers = [probe_viewer(udp_port, 6) for _ in range(2)]
        host.wait_for("2 watching")
        keys = ClientKeys.load(None, "127.0.0.1", "127.0.0.1")  # this machine: trusted
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(1.0)
            answers, sent = [], 0
            for _ in range(3):  # a client retrying its handshake
                init = encode_datagram(PacketType.CONTROL, 0, 0, keys.initiator().start())
                sent += len(init)
                sock.sendto(init, ("127.0.0.1", udp_port))
                try:
                    answers.append(sock.recv(2048))
                except TimeoutError:
                    pass
        for watcher in watchers:
            assert probe_result(watcher)["presented"] > 0
    finally:
        host.stop()
    assert len(answers) == 1, answers  # one refusal per address per 10 s
    _, payload = decode_datagram(answers[0])
    assert bytes(payload) == bytes.fromhex("2a0104")  # REFUSED, version 1, full
    assert len(answers[0]) < sent // 3
    assert "refused_full=" in host.log()
