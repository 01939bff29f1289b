"""The command line: help that explains, plain errors, no tracebacks."""

from __future__ import annotations

import subprocess

import pytest
from session_helpers import rootstream_command


def run(*args, timeout=60):
    return subprocess.run(rootstream_command(*args), capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("command", [[], ["host"], ["connect"], ["doctor"]])
def test_help_explains_each_command(command):
    done = run(*command, "--help")
    assert done.returncode == 0
    assert "Usage:" in done.stdout and len(done.stdout.splitlines()) > 5


def test_doctor_lists_every_stage_with_reasons():
    done = run("doctor", "--kms")
    assert done.returncode == 0
    for section in ("capture:", "encode:", "decode:", "present:", "kms capture, step by step"):
        assert section in done.stdout
    assert "x264     works" in done.stdout
    assert "test     works" in done.stdout
    # What the libraries underneath would print on their own is not shown:
    # pysdl2's note about its SDL binaries, alsa-lib's failed card lookups.
    assert "Using SDL2 binaries" not in done.stderr
    assert "ALSA lib" not in done.stderr


@pytest.mark.parametrize("args, message", [
    (["host", "--size", "banana"], "use WIDTHxHEIGHT"),
    (["host", "--size", "641x480"], "must be even"),
    (["host", "--fps", "0"], "--fps"),
    (["connect", "127.0.0.1:99999"], "the port must be 1-65535"),
    (["connect", "no-such-host.invalid"], "cannot resolve"),
])
def test_bad_input_gets_one_plain_sentence(args, message):
    done = run(*args)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_port_in_use_is_a_plain_error(udp_port):
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", udp_port))
        done = run("host", "--source", "test", "--bind", "127.0.0.1", "--port", str(udp_port))
    assert done.returncode == 2
    assert "cannot bind UDP" in done.stderr and "hint:" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_x_display_is_explained():
    done = run("host", "--source", "x11", "--display", ":4242")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "X display" in done.stderr or "display" in done.stderr
