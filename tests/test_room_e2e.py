"""Room codes end to end on loopback: real `rootstream host --room` and `rootstream
connect --room` processes, encrypted, with separate config directories (the guest
was never paired), and nothing stored on either side afterwards."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from session_helpers import HostProcess, rootstream_command

pytestmark = pytest.mark.slow


def _env(config_dir) -> dict:
    return dict(os.environ, XDG_CONFIG_HOME=str(config_dir))


@pytest.fixture
def room_host(tmp_path, udp_port):
    host = HostProcess(udp_port, "--source", "test", "--size", "640x360", "--fps", "30",
                       "--room", "--input", "none", "--audio", "none",
                       env=_env(tmp_path / "host-config"), log_dir=tmp_path)
    try:
        host.wait_for("listening on")
        code = host.log().split("room code ", 1)[1][:7].replace(" ", "")
        yield host, code
    finally:
        host.stop()


def _join(port, code, config_dir, *extra):
    return subprocess.run(
        rootstream_command("connect", f"127.0.0.1:{port}", "--room", code, "--present", "null",
                           "--no-audio", *extra),
        env=_env(config_dir), capture_output=True, text=True, timeout=60)


def test_a_guest_with_the_right_room_code_watches_and_nothing_is_stored(room_host, udp_port,
                                                                        tmp_path):
    host, code = room_host
    guest_dir = tmp_path / "guest-config"
    session = _join(udp_port, code, guest_dir, "--frames", "20")
    assert session.returncode == 0, session.stderr
    assert "20 frames shown" in session.stderr
    host.wait_for("joined the room")
    host.wait_for("connected")
    # A guest watches: the host's state told it nobody (no paired viewer here) holds control.
    assert "control: nobody; 1 watching" in session.stderr
    # No trust was stored on either side.
    for directory in (guest_dir, tmp_path / "host-config"):
        assert not list(directory.rglob("trusted_peers.json")), directory
    # Without the code the same guest is a stranger: refused, as any unpaired client.
    stranger = subprocess.run(
        rootstream_command("connect", f"127.0.0.1:{udp_port}", "--present", "null",
                           "--frames", "5"),
        env=_env(guest_dir), capture_output=True, text=True, timeout=60)
    assert stranger.returncode != 0 and "0 frames shown" not in stranger.stdout


def test_a_wrong_room_code_gets_nothing_and_three_burn_it(room_host, udp_port, tmp_path):
    host, code = room_host
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(3):
        done = _join(udp_port, wrong, tmp_path / "guest-config", "--frames", "5")
        assert done.returncode != 0
        assert "wrong room code" in done.stderr, done.stderr
        assert "frames shown" not in done.stderr  # never got as far as a session
        time.sleep(1.05)  # the host answers one try a second
    host.wait_for("burned")
    # The old code is dead; the host shows a new one, which works.
    done = _join(udp_port, code, tmp_path / "guest-config", "--frames", "5")
    assert done.returncode != 0 and "frames shown" not in done.stderr
    new_code = host.log().rsplit("room code ", 1)[1][:7].replace(" ", "")
    assert new_code != code
    time.sleep(1.05)
    done = _join(udp_port, new_code, tmp_path / "guest-config", "--frames", "5")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("handoff, told", [
    (("--handoff", "free", "--guests-control"), "you have control"),
    (("--handoff", "free"), "guests watch only"),
    (("--handoff", "ask", "--guests-control"), "guests watch only"),
])
def test_a_guest_takes_control_only_with_free_and_guests_control(tmp_path, udp_port, handoff,
                                                                 told):
    host = HostProcess(udp_port, "--source", "test", "--size", "640x360", "--fps", "30",
                       "--room", "--input", "none", "--audio", "none", *handoff,
                       env=_env(tmp_path / "host-config"), log_dir=tmp_path)
    try:
        host.wait_for("listening on")
        code = host.log().split("room code ", 1)[1][:7].replace(" ", "")
        session = _join(udp_port, code, tmp_path / "guest-config", "--control", "--seconds",
                        "3")
        assert session.returncode == 0, session.stderr
        assert told in session.stderr, session.stderr
        if told == "you have control":
            host.wait_for("(granted)")
    finally:
        host.stop()
