"""Start real `rootstream host` processes for the session tests."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


class LoggedProcess:
    """A `python -m rootstream_cli ...` process, its output captured to a file."""

    def __init__(self, command: list[str], log_path: Path, env: dict | None = None):
        self.log_path = log_path
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env or dict(os.environ))

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.log_path.stem} exited ({self.proc.returncode}):"
                                     f"\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.log_path.stem} never printed {text!r}:"
                                     f"\n{self.log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class HostProcess(LoggedProcess):
    """`python -m rootstream_cli host ...` on loopback, its log captured to a file."""

    def __init__(self, port: int, *args: str, env: dict | None = None, log_dir: Path):
        self.port = port
        super().__init__([sys.executable, "-m", "rootstream_cli", "host", "--bind", "127.0.0.1",
                          "--port", str(port), "--stats-interval", "1", *args],
                         log_dir / f"host-{port}.log", env)


@contextlib.contextmanager
def listening_pattern_host(port: int, log_dir: Path):
    """A host streaming its test pattern (640x360@30) on ``port``, stopped on leaving."""
    host = HostProcess(port, "--source", "test", "--size", "640x360", "--fps", "30",
                       log_dir=log_dir)
    try:
        host.wait_for("listening on")
        yield host
    finally:
        host.stop()


def rootstream_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "rootstream_cli", *args]


def paint_root(display: str, colour: str) -> None:
    """Fill an X display's root window with one colour (xsetroot)."""
    subprocess.run(["xsetroot", "-display", display, "-solid", colour], check=True, timeout=10)


def centre_colour(display: str) -> np.ndarray:
    """Mean B, G, R of the middle of an X display (a client's window), grabbed
    independently of the client."""
    from rootstream.capture.x11 import X11Capture

    with X11Capture(display=display, use_damage=False) as grab:
        frame = grab.grab(timeout=1.0)
        h, w = frame.height, frame.width
        pixels = frame.pixels[:, : w * 4].reshape(h, w, 4)
        return pixels[h // 3: 2 * h // 3, w // 3: 2 * w // 3, :3].reshape(-1, 3).mean(axis=0)


def wait_for_colour(display: str, want_bgr, timeout: float = 15.0) -> np.ndarray:
    """Poll centre_colour until it is near ``want_bgr``; the last reading either way."""
    deadline = time.monotonic() + timeout
    while True:
        colour = centre_colour(display)
        if np.all(np.abs(colour - np.array(want_bgr)) < 40):
            return colour
        if time.monotonic() > deadline:
            return colour
        time.sleep(0.2)


class SdlClient:
    """`rootstream connect` showing the stream in an SDL window on an X display."""

    def __init__(self, port: int, display, seconds: int = 30):
        self.proc = subprocess.Popen(
            rootstream_command("connect", f"127.0.0.1:{port}", "--present", "sdl",
                               "--seconds", str(seconds)),
            env=display.env(SDL_VIDEODRIVER="x11"),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def stop(self) -> str:
        """End the client; its stderr."""
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err or ""


PROBE = Path(__file__).with_name("viewer_probe.py")


def probe_viewer(port: int, seconds: float) -> subprocess.Popen:
    """A viewer process of its own (tests/viewer_probe.py) that prints what it saw as JSON."""
    return subprocess.Popen([sys.executable, str(PROBE), "127.0.0.1", str(port), str(seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def probe_result(probe: subprocess.Popen) -> dict:
    out, err = probe.communicate(timeout=60)
    assert probe.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def assert_pictures_intact(client) -> None:
    """Every picture the in-process ``client`` showed was whole and in order: no
    concealed damage, every embedded frame number read back, only increasing
    (a picture decoded past a missing reference breaks one of these)."""
    result = client.result
    assert client.stats.totals.get("corrupt_pictures", 0) == 0, "FFmpeg concealed damage"
    markers = result.markers
    assert len(markers) == result.frames_presented, "a picture's embedded code was unreadable"
    assert all(b > a for a, b in zip(markers, markers[1:], strict=False)), \
        "a picture out of order or repeated: the decoder showed a broken reference"
