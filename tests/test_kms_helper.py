"""rootstream-kms-helper, the compiled program, against real sockets and processes.

Without a DRM card these run everything up to the card: what the helper
accepts, refuses, logs, which privileges it keeps, whom it serves and when it
exits.  Card 255 never exists, so a well-formed request is answered "failed:
ENOENT" -- proof it got past every check.  The pixels through a real kernel
are tests/test_kms_helper_vm.py's.
"""

from __future__ import annotations

import array
import errno
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rootstream._native.drm_device import DrmIoctlError
from rootstream._native.drm_map import BufferMapper
from rootstream._native.kms_helper_protocol import REPLY, Reply, Request, Status
from rootstream.capture import kms_grant
from rootstream.capture.kms_grant import ExportedPlanes, KmsHelper, built_helper

NO_CARD = "255"
PREFIX = "rootstream-kms-helper: "


@pytest.fixture(scope="module")
def binary() -> Path:
    path = built_helper()
    if not path.exists():  # built by `pip install -e .`; missing means the build is broken
        pytest.fail(f"{path} was not built (needs libdrm-dev; rerun pip install -e .)")
    return path


class Running:
    """The helper started on a socketpair, as the host starts it; stderr kept."""

    def __init__(self, binary: Path, *args: str, **popen):
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.proc = subprocess.Popen([str(binary), *(args or (NO_CARD,))], stdin=theirs,
                                     stderr=subprocess.PIPE, **popen)
        theirs.close()
        self.sock.settimeout(5)

    def ask(self, data: bytes, fds: tuple[int, ...] = ()) -> Reply:
        if fds:
            self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                        array.array("i", fds))])
        else:
            self.sock.send(data)
        reply, got, _, _ = socket.recv_fds(self.sock, REPLY.size + 1, 4)
        assert got == []
        return Reply.parse(reply)

    def fds(self) -> set[int]:
        return {int(n) for n in os.listdir(f"/proc/{self.proc.pid}/fd")}

    def status(self) -> dict[str, str]:
        lines = Path(f"/proc/{self.proc.pid}/status").read_text().splitlines()
        return dict(line.split(":\t", 1) for line in lines if ":\t" in line)

    def finish(self) -> tuple[int, list[str]]:
        """Close the host's end; the helper's exit status and stderr lines."""
        self.sock.close()
        code = self.proc.wait(timeout=5)
        with self.proc.stderr:
            return code, self.proc.stderr.read().decode().splitlines()


def test_a_valid_request_gets_past_every_check(binary):
    helper = Running(binary)
    reply = helper.ask(bytes(Request(31, 0)))
    assert reply == Reply(Status.FAILED, plane_id=31, error=errno.ENOENT)
    assert helper.finish() == (0, [])


MALFORMED = [
    (b"", None, None),  # placeholder replaced below; an empty message is EOF
    (bytes(Request(31))[:15], errno.EMSGSIZE, "it is shorter than 16 bytes"),
    (b"R", errno.EMSGSIZE, "it is shorter than 16 bytes"),
    (bytes(Request(31)) + b"\0", errno.EMSGSIZE, "it is longer than 16 bytes"),
    (bytes(Request(31)) * 256, errno.EMSGSIZE, "it is longer than 16 bytes"),
    (b"RSKX" + bytes(Request(31))[4:], errno.EINVAL, "bad magic"),
    (bytes(Request(31, version=2)), errno.EINVAL, "unsupported protocol version"),
    (bytes(Request(31, version=0)), errno.EINVAL, "unsupported protocol version"),
    (bytes(Request(31, kind=2)), errno.EINVAL, "unknown request kind"),
    (bytes(Request(31, kind=0xFFFF)), errno.EINVAL, "unknown request kind"),
    (bytes(Request(0, 84)), errno.EINVAL, "plane id 0"),
][1:]


def test_malformed_requests_are_refused_and_logged(binary):
    helper = Running(binary)
    for data, code, _ in MALFORMED:
        assert helper.ask(data) == Reply(Status.REFUSED, error=code), data
    # Still serving after all of them.
    assert helper.ask(bytes(Request(31))).status == Status.FAILED
    code, lines = helper.finish()
    assert code == 0
    assert lines == [f"{PREFIX}refused a request: {why}" for _, _, why in MALFORMED]


def test_fds_slipped_into_a_request_are_closed_and_refused(binary):
    helper = Running(binary)
    read_end, write_end = os.pipe()
    try:
        reply = helper.ask(bytes(Request(31)), fds=(read_end, write_end))
        assert reply == Reply(Status.REFUSED, error=errno.EINVAL)
        assert helper.fds() == {0, 1, 2}  # it kept neither end
    finally:
        os.close(read_end)
        os.close(write_end)
    assert helper.finish()[1] == [f"{PREFIX}refused a request: it carried ancillary data"]


def test_a_flood_of_refusals_is_logged_twenty_times(binary):
    helper = Running(binary)
    for _ in range(50):
        assert helper.ask(b"junk").status == Status.REFUSED
    lines = helper.finish()[1]
    assert len(lines) == 20
    assert lines[-1].endswith("it is shorter than 16 bytes (further refusals not logged)")


def test_mangled_requests_never_crash_it(binary):
    """Every byte of a valid request flipped at random, and random lengths: each
    gets an answer, and the helper is still there at the end."""
    rng = random.Random(18)
    valid = bytes(Request(31, 84))
    helper = Running(binary)
    for i in range(400):
        if i % 2:
            data = bytearray(valid)
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(16)] = rng.randrange(256)
            data = bytes(data)
        else:
            data = rng.randbytes(rng.randint(1, 40))
        assert helper.ask(data).status in (Status.REFUSED, Status.FAILED)
    assert helper.proc.poll() is None
    assert helper.finish()[0] == 0


def test_it_keeps_only_cap_sys_admin_and_no_stray_fds(binary):
    """Started by root (all capabilities, an extra inherited fd), it keeps
    CAP_SYS_ADMIN in its permitted set only, no fd but 0, 1 and 2, and runs
    under its system call filter."""
    read_end, write_end = os.pipe()
    try:
        helper = Running(binary, pass_fds=(write_end,))
        assert helper.ask(bytes(Request(31))).status == Status.FAILED  # it is up
        status, fds = helper.status(), helper.fds()
    finally:
        os.close(read_end)
        os.close(write_end)
    assert fds == {0, 1, 2}
    assert int(status["CapEff"], 16) == 0  # raised only around GETFB2
    assert int(status["CapPrm"], 16) & ~(1 << 21) == 0
    assert int(status["CapInh"], 16) == 0 and int(status["CapAmb"], 16) == 0
    assert status["NoNewPrivs"] == "1"
    if platform.machine() in ("x86_64", "aarch64"):
        assert status["Seccomp"] == "2"  # a system call filter is installed
    if os.geteuid() == 0:
        assert int(status["CapPrm"], 16) == 1 << 21
    assert helper.finish() == (0, [])


def test_it_exits_when_the_host_closes_the_socket(binary):
    helper = Running(binary)
    assert helper.ask(bytes(Request(31))).status == Status.FAILED
    start = time.monotonic()
    assert helper.finish()[0] == 0
    assert time.monotonic() - start < 2


def test_it_refuses_a_socket_from_a_process_that_is_not_its_parent(binary):
    """The socket comes from this process, but a middle process starts the helper."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    middle = [sys.executable, "-c",
              "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))",
              str(binary), NO_CARD]
    done = subprocess.run(middle, stdin=theirs, capture_output=True, timeout=10, check=False)
    theirs.close()
    mine.close()
    assert done.returncode == 3
    assert done.stderr.decode().splitlines() == [
        f"{PREFIX}refused: the socket's peer is not the process that started the helper"]


MIDDLE_HOST = """
import os, socket, subprocess, sys
mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
helper = subprocess.Popen([sys.argv[1], sys.argv[2]], stdin=theirs,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
# Keep the host's end open in another process: only the parent's death,
# not EOF, can end the helper now.
keeper = subprocess.Popen(["sleep", "30"], pass_fds=(mine.fileno(),),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
mine.send(bytes.fromhex("52534b4801000100" "1f00000000000000"))
mine.recv(100)
print(helper.pid, keeper.pid, flush=True)
os.kill(os.getpid(), 9)
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):  # reaped, or being reaped
        return True
    return state in ("Z", "X")


def test_it_dies_with_its_parent(binary):
    middle = subprocess.run([sys.executable, "-c", MIDDLE_HOST, str(binary), NO_CARD],
                            capture_output=True, timeout=10, check=False)
    assert middle.returncode == -signal.SIGKILL
    helper_pid, keeper_pid = map(int, middle.stdout.split())
    try:
        deadline = time.monotonic() + 3
        while not _gone(helper_pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _gone(helper_pid)
    finally:
        os.kill(keeper_pid, signal.SIGKILL)


@pytest.mark.parametrize("args", [(), ("abc",), ("1000",), ("-1",), ("",), ("0", "1"),
                                  ("0x1",)])
def test_bad_arguments(binary, args):
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    done = subprocess.run([str(binary), *args], stdin=theirs, capture_output=True, timeout=10,
                          check=False)
    theirs.close()
    mine.close()
    assert done.returncode == 2
    assert done.stderr.decode().startswith(f"{PREFIX}usage: rootstream-kms-helper CARD_NUMBER")


@pytest.mark.parametrize("kind", [socket.SOCK_STREAM, socket.SOCK_DGRAM, "pipe"])
def test_fd_0_must_be_a_seqpacket_socket(binary, kind):
    if kind == "pipe":
        theirs, mine = os.pipe()
    else:
        a, b = socket.socketpair(socket.AF_UNIX, kind)
        theirs, mine = a.detach(), b.detach()
    done = subprocess.run([str(binary), NO_CARD], stdin=theirs, capture_output=True,
                          timeout=10, check=False)
    os.close(theirs)
    os.close(mine)
    assert (done.returncode, done.stderr.decode()) == (
        2, f"{PREFIX}fd 0 is not a SOCK_SEQPACKET socket\n")


# --- the host side: kms_grant ----------------------------------------------

class NoCard:
    """BufferMapper's device: never reached, the helper answers before any mapping."""

    fd = -1


def test_host_side_reports_the_kernels_errno(binary):
    helper = KmsHelper(int(NO_CARD), binary, stderr=subprocess.DEVNULL)
    planes = ExportedPlanes(helper, BufferMapper(NoCard()))
    with pytest.raises(DrmIoctlError) as info:
        planes.read(31)
    assert info.value.errno == errno.ENOENT
    assert str(info.value) == "rootstream-kms-helper could not read plane 31: " \
                              "No such file or directory"
    planes.close()
    assert helper._proc.returncode == 0  # it saw EOF and exited


def test_host_side_reports_a_helper_that_is_not_there(tmp_path):
    with pytest.raises(kms_grant.DrmError, match="^cannot start .*: No such file"):
        KmsHelper(0, tmp_path / "rootstream-kms-helper")


def test_cap_sys_admin_is_read_from_the_effective_set():
    assert kms_grant.has_cap_sys_admin("Name:\tx\nCapEff:\t0000000000200000\n")
    assert not kms_grant.has_cap_sys_admin("CapPrm:\t0000000000200000\nCapEff:\t0\n")
    assert not kms_grant.has_cap_sys_admin("CapEff:\t000001ffffdfffff\n")
    assert kms_grant.has_cap_sys_admin() == (os.geteuid() == 0)


def test_card_number(tmp_path):
    assert kms_grant.card_number("/dev/dri/card0") == 0
    assert kms_grant.card_number("/dev/dri/card12") == 12
    assert kms_grant.card_number("/dev/dri/renderD128") is None
    assert kms_grant.card_number("replay:card-hdmi") is None
    (tmp_path / "card0").symlink_to("/dev/dri/card3")
    assert kms_grant.card_number(str(tmp_path / "card0")) == 3


def test_install_commands_name_the_helper_alone():
    commands = kms_grant.install_commands()
    assert commands == [
        f"sudo install -D -o root -g video -m 0750 {built_helper()} "
        "/usr/local/libexec/rootstream-kms-helper",
        "sudo setcap cap_sys_admin+ep /usr/local/libexec/rootstream-kms-helper",
    ]
    assert not any("python" in command for command in commands)


def test_helper_state(binary, tmp_path, monkeypatch):
    missing = tmp_path / "rootstream-kms-helper"
    ok, found = kms_grant.helper_state(missing)
    assert not ok and found.startswith(f"{missing} is not installed; install the KMS helper: ")
    copy = tmp_path / "copy"
    copy.write_bytes(binary.read_bytes())
    copy.chmod(0o750)
    ok, found = kms_grant.helper_state(copy)
    assert (ok, found) == (False, f"{copy} lacks its capability: "
                                  f"sudo setcap cap_sys_admin+ep {copy}")
    monkeypatch.setenv("ROOTSTREAM_KMS_HELPER", str(copy))
    assert kms_grant.helper_path() == copy


def test_doctor_prints_the_install_commands(tmp_path):
    from session_helpers import rootstream_command

    env = dict(os.environ, ROOTSTREAM_KMS_HELPER=str(tmp_path / "rootstream-kms-helper"))
    done = subprocess.run(rootstream_command("doctor"), capture_output=True, text=True,
                          timeout=120, env=env, check=False)
    assert done.returncode == 0
    line = next(line for line in done.stdout.splitlines() if line.startswith("  helper "))
    assert line.endswith(" && ".join(kms_grant.install_commands()))
    assert "python" not in line.split("install the KMS helper:")[1].replace(
        str(built_helper()), "")


def test_the_hint_says_how_to_build_a_missing_helper(monkeypatch, tmp_path):
    monkeypatch.setattr(kms_grant, "built_helper", lambda: tmp_path / "rootstream-kms-helper")
    assert kms_grant.install_hint().startswith(
        "build it (apt-get install libdrm-dev, then reinstall rootstream) and install the KMS "
        f"helper: sudo install -D -o root -g video -m 0750 {tmp_path}/rootstream-kms-helper ")


def test_a_helper_of_another_version_is_named_with_the_reinstall_commands(tmp_path):
    """A stand-in helper (a real process on the real socket) that answers in
    protocol version 2: the host refuses the reply and says what to do."""
    impostor = tmp_path / "rootstream-kms-helper"
    reply = bytearray(bytes(Reply(Status.OFF, plane_id=31)))
    reply[4:6] = b"\x02\x00"
    impostor.write_text(f"#!{sys.executable}\nimport os\n"
                        f"while os.read(0, 100):\n    os.write(0, {bytes(reply)!r})\n")
    impostor.chmod(0o755)
    helper = KmsHelper(0, impostor)
    try:
        with pytest.raises(kms_grant.HelperProtocolError) as info:
            helper.ask(31)
    finally:
        helper.close()
    assert str(info.value) == "kms helper speaks another protocol version"
    assert info.value.hint == ("the installed helper may be from another rootstream version; "
                               + kms_grant.install_hint())
