"""Shared fixtures: real Xvfb displays, free UDP ports, the per-device markers."""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import time

import pytest
from device_probes import missing_devices


@pytest.fixture(autouse=True)
def private_config_dir(tmp_path_factory, monkeypatch):
    """Each test gets its own identity and trust store (XDG_CONFIG_HOME), so
    nothing touches the user's real keys and tests cannot see each other's."""
    home = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


def pytest_collection_modifyitems(config, items):
    """Skip a device-marked test (kms, uinput, vaapi, nvenc, nvdec) only when
    its device is absent here, saying why (tests/device_probes.py)."""
    missing = missing_devices()
    for item in items:
        for name, reason in missing.items():
            if item.get_closest_marker(name) is not None:
                item.add_marker(pytest.mark.skip(reason=f"{name}: {reason}"))
                break


class Xvfb:
    """A real Xvfb server on a free display number, stopped on close()."""

    def __init__(self, width: int = 1280, height: int = 720, depth: int = 24):
        if shutil.which("Xvfb") is None:
            raise RuntimeError("Xvfb is not installed (apt-get install xvfb)")
        self.width, self.height = width, height
        # -displayfd: Xvfb picks a free display number itself and writes it to
        # the pipe once it accepts connections.  Choosing a number here would
        # race with any other X server starting on the machine at that moment.
        read_end, write_end = os.pipe()
        self.proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{width}x{height}x{depth}",
             "-nolisten", "tcp", "-noreset", "+extension", "DAMAGE", "+extension", "XTEST"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(write_end,),
        )
        os.close(write_end)
        try:
            number = self._read_display_number(read_end)
        finally:
            os.close(read_end)
        if number is None:
            self.close()
            raise RuntimeError("Xvfb did not start")
        self.display = f":{number}"

    def _read_display_number(self, fd: int, timeout: float = 10.0) -> int | None:
        deadline = time.monotonic() + timeout
        text = b""
        while not text.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 64)
            if not chunk:
                return None  # Xvfb exited before it was ready
            text += chunk
        return int(text.strip())

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env["DISPLAY"] = self.display
        env.update(extra)
        return env

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def xvfb():
    """A fresh 1280x720 Xvfb display for one test."""
    server = Xvfb()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def xvfb_factory():
    """Start several displays of chosen sizes: ``xvfb_factory(640, 480)``."""
    servers: list[Xvfb] = []

    def start(width: int = 1280, height: int = 720) -> Xvfb:
        server = Xvfb(width, height)
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.close()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def udp_port() -> int:
    return free_udp_port()
