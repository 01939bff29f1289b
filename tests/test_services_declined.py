"""A side that cannot run a service tells the other, which stops sending for it.

Real processes on loopback.  A client whose sound device cannot be opened
asks the host (a new hello without audio) to stop sending sound, exactly as
``--no-audio`` does from the start, and says so once; a host that injects
no input says so in its config, and the client sends none and says why.
Before this, the client received and dropped every AUDIO datagram for the
whole session (audio_dropped grew by 200 a second), and the host dropped
every INPUT datagram.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest
from session_helpers import HostProcess, rootstream_command

pytestmark = pytest.mark.slow

SECONDS = 5
HOST_ARGS = ("--source", "test", "--size", "480x270", "--fps", "30", "--bitrate", "1",
             "--insecure")


def reports(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_client(port: int, tmp_path, *args: str, env: dict) -> tuple[str, list[dict]]:
    stats = tmp_path / "client.jsonl"
    client = subprocess.run(
        rootstream_command("connect", f"127.0.0.1:{port}", "--present", "null", "--insecure",
                           "--seconds", str(SECONDS), "--stats-interval", "1",
                           "--stats-json", str(stats), *args),
        env=env, capture_output=True, text=True, timeout=SECONDS + 30)
    assert client.returncode == 0, client.stderr
    return client.stderr, reports(stats)


@pytest.mark.parametrize("how", ["no-device", "--no-audio"])
def test_a_client_without_sound_stops_the_host_sending_it(how, udp_port, tmp_path):
    host_stats = tmp_path / "host.jsonl"
    host = HostProcess(udp_port, *HOST_ARGS, "--audio", "test", "--input", "none",
                       "--stats-json", str(host_stats), log_dir=tmp_path)
    env = {**os.environ, "SDL_AUDIODRIVER": "no-such-driver"}
    try:
        host.wait_for("listening on")
        said, client = run_client(udp_port, tmp_path,
                                  *(["--no-audio"] if how == "--no-audio" else []), env=env)
    finally:
        host.stop()
    sound_off = [line for line in said.splitlines() if "sound off" in line]
    if how == "no-device":
        assert len(sound_off) == 1 and "the host is asked to send none" in sound_off[0], said
    else:
        assert sound_off == [], said
    # The host stopped its sound for this client, as for --no-audio: it
    # counts the decline, and its sound stops (a fraction of a second went
    # out before the client found it had no device; 5 ms frames).
    host_totals = [r["totals"] for r in reports(host_stats)]
    assert host_totals[-1].get("audio_declined") == 1, host_totals[-1]
    sent = [t.get("audio_frames", 0) for t in host_totals]
    assert len(sent) >= 4 and sent[-1] == sent[-3] and sent[-1] < 200, sent
    dropped = [r["totals"].get("audio_dropped", 0) for r in client]
    assert len(dropped) >= 4 and dropped[-1] == dropped[-3] and dropped[-1] < 200, dropped


@pytest.mark.skipif(shutil.which("xdotool") is None, reason="apt install xdotool")
def test_a_host_without_input_gets_none_and_the_client_says_why(xvfb, udp_port, tmp_path):
    host_stats = tmp_path / "host.jsonl"
    host = HostProcess(udp_port, *HOST_ARGS, "--audio", "none", "--input", "none",
                       "--stats-json", str(host_stats), log_dir=tmp_path)
    stats = tmp_path / "client.jsonl"
    env = xvfb.env(SDL_VIDEODRIVER="x11")
    try:
        host.wait_for("listening on")
        client = subprocess.Popen(
            rootstream_command("connect", f"127.0.0.1:{udp_port}", "--present", "sdl",
                               "--insecure", "--no-audio", "--seconds", str(SECONDS),
                               "--stats-interval", "1", "--stats-json", str(stats)),
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            window = ""
            deadline = time.monotonic() + 15
            while not window and time.monotonic() < deadline:
                found = subprocess.run(["xdotool", "search", "--onlyvisible", "--class", "."],
                                       env=env, capture_output=True, text=True, timeout=10)
                window = (found.stdout.split() or [""])[0]
                time.sleep(0.1)
            assert window, "the client's window never appeared"
            subprocess.run(["xdotool", "windowfocus", "--sync", window], env=env, timeout=10)
            for _ in range(10):  # a player typing and clicking
                subprocess.run(["xdotool", "mousemove", "--window", window, "50", "40", "key",
                                "a", "click", "1"], env=env, check=True, timeout=10)
                time.sleep(0.1)
            said = client.communicate(timeout=SECONDS + 30)[0]
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
    finally:
        host.stop()
    assert client.returncode == 0, said
    told = [line for line in said.splitlines() if "input is not sent" in line]
    assert len(told) == 1 and "the host injects none" in told[0], said
    assert "input goes to the host" not in said
    # Nothing reached the host to be dropped there.
    totals = reports(host_stats)[-1]["totals"]
    assert totals.get("dropped_unexpected", 0) == 0, totals
