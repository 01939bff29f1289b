"""Sound for a room (`host --viewers N`): it runs while any viewer wants it, and a
change of first viewer does not restart it for those listening.

Processes: ``rootstream host --audio test --viewers 3`` and ``rootstream connect``
clients on loopback, encrypted, the listeners playing through SDL's disk driver.
The host logs one "audio test signal starts" line each time it opens its sound
capture, so a restart is counted, not guessed from a gap.  The bug this pins:
with a quiet first viewer (``--no-audio``) and a listener, the quiet one leaving
made the listener first, and the host closed and reopened the capture under it.
"""

from __future__ import annotations

import os
import re
import time

import pytest
from session_helpers import HostProcess, LoggedProcess, rootstream_command

pytestmark = pytest.mark.slow

STARTS = "audio test signal starts"


class Viewer(LoggedProcess):
    def __init__(self, port: int, name: str, tmp_path, *, sound: bool):
        args = ["connect", f"127.0.0.1:{port}", "--present", "null", "--seconds", "60"]
        env = dict(os.environ, SDL_AUDIODRIVER="disk",
                   SDL_DISKAUDIOFILE=str(tmp_path / f"{name}.raw"))
        super().__init__(rootstream_command(*args, *([] if sound else ["--no-audio"])),
                         tmp_path / f"{name}.log", env)


def audio_frames(host: HostProcess) -> int:
    """The host's newest count of sound payloads sent."""
    counts = re.findall(r"audio_frames=(\d+)", host.log())
    return int(counts[-1]) if counts else 0


def frames_over(host: HostProcess, seconds: float) -> int:
    """Sound payloads the host sent in about ``seconds`` (its stats line comes each second)."""
    before = audio_frames(host)
    time.sleep(seconds)
    return audio_frames(host) - before


def wait_count(process: LoggedProcess, text: str, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while process.log().count(text) < count:
        assert time.monotonic() < deadline, f"not {count} x {text!r}:\n{process.log()}"
        time.sleep(0.1)


def test_a_listener_keeps_its_sound_when_the_quiet_first_viewer_leaves(
        tmp_path, udp_port, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # one identity for all
    host = HostProcess(udp_port, "--source", "test", "--size", "640x360", "--fps", "20",
                       "--bitrate", "1", "--viewers", "3", "--audio", "test", "--input", "none",
                       log_dir=tmp_path)
    made = [host]
    try:
        host.wait_for("listening on")
        quiet = Viewer(udp_port, "quiet", tmp_path, sound=False)
        made.append(quiet)
        host.wait_for("connected")
        time.sleep(1.5)
        assert host.log().count(STARTS) == 0, "nobody wants sound: no capture"
        listener = Viewer(udp_port, "listener", tmp_path, sound=True)
        made.append(listener)
        host.wait_for(STARTS)  # none -> some: the capture opens
        host.wait_for("2 watching")
        quiet.stop()
        host.wait_for("is the first viewer now")
        # The listener is first now; its sound went on: no second start, and
        # the host kept sending (200 payloads a second at 5 ms frames).
        assert frames_over(host, 2.5) > 200
        assert host.log().count(STARTS) == 1, "the sound capture restarted under the listener"
        # some -> none: a quiet viewer joins, the last listener leaves; sound stops.
        late = Viewer(udp_port, "late", tmp_path, sound=False)
        made.append(late)
        wait_count(host, ") connected", 3)
        listener.stop()
        time.sleep(1.5)  # one stats line after the change
        assert frames_over(host, 2.5) == 0, "sound went on with nobody listening"
        assert host.log().count(STARTS) == 1
        assert (tmp_path / "listener.raw").stat().st_size > 0  # it did play sound
    finally:
        for process in reversed(made):
            process.stop()
    for name in ("quiet", "listener", "late"):
        assert "Traceback" not in (tmp_path / f"{name}.log").read_text()
