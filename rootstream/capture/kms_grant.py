"""KMS capture without CAP_SYS_ADMIN on Python: rootstream-kms-helper hands over the buffers.

The kernel gives framebuffer handles (GETFB2) only to CAP_SYS_ADMIN, so the
capability sits on one small C program (rootstream/_native/kms_helper.c),
installed root:video 0750.  The host starts it with one end of a socketpair,
asks for "the framebuffer plane P shows", and gets the buffer as read-only
dma-buf fds (SCM_RIGHTS) plus its GETFB2 description, only when it changed.
Everything else about capture (topology, cursor position, pixels) the host
reads itself, unprivileged.

The helper serves only the process that started it and exits when that
process closes the socket or dies.  It arms its parent-death signal for the
*thread* that started it (that is how PR_SET_PDEATHSIG works), so start it
from a thread that lives as long as the capture: the host opens captures on
its main thread.
"""

from __future__ import annotations

import errno as errno_codes
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

from rootstream._native.drm_device import DrmIoctlError
from rootstream._native.drm_map import BufferMapper, Mapping
from rootstream._native.drm_parse import DrmError, Framebuffer
from rootstream._native.kms_helper_protocol import (
    REPLY,
    HelperProtocolError,
    Reply,
    Request,
    Status,
)

HELPER_NAME = "rootstream-kms-helper"
# Where the install commands put it: a root-owned system path, never the
# user's own (a user-writable directory would let its owner swap the file).
INSTALLED = Path("/usr/local/libexec") / HELPER_NAME
# Overrides INSTALLED, for tests and packagers; the helper itself trusts no
# environment, the host only uses this to find it.
PATH_VARIABLE = "ROOTSTREAM_KMS_HELPER"
CAP_SYS_ADMIN = 21
ANSWER_TIMEOUT = 2.0  # a few ioctls: any longer and the helper is stuck


def built_helper() -> Path:
    """Where setup.py builds the helper: next to the C extensions, as package data."""
    return Path(__file__).resolve().parent.parent / "_native" / HELPER_NAME


def helper_path() -> Path:
    """The helper the host starts (it may not exist)."""
    return Path(os.environ.get(PATH_VARIABLE) or INSTALLED)


def install_commands(target: Path | None = None) -> list[str]:
    """The exact commands that install the built helper with its capability."""
    target = target or INSTALLED
    return [
        f"sudo install -D -o root -g video -m 0750 {built_helper()} {target}",
        f"sudo setcap cap_sys_admin+ep {target}",
    ]


def install_hint() -> str:
    hint = "install the KMS helper: " + " && ".join(install_commands())
    if not built_helper().exists():  # setup.py skips it without the DRM headers
        hint = f"build it (apt-get install libdrm-dev, then reinstall rootstream) and {hint}"
    return hint


def mismatch_hint() -> str:
    """For a helper that does not speak this host's protocol."""
    return f"the installed helper may be from another rootstream version; {install_hint()}"


def has_cap_sys_admin(status: str | None = None) -> bool:
    """Whether this process holds CAP_SYS_ADMIN now (its effective set)."""
    if status is None:
        status = Path("/proc/self/status").read_text()
    match = re.search(r"^CapEff:\s*([0-9a-fA-F]+)$", status, re.M)
    return bool(match and int(match.group(1), 16) >> CAP_SYS_ADMIN & 1)


def card_number(card_path: str) -> int | None:
    """N for /dev/dri/cardN (through symlinks such as /dev/dri/by-path/...), else None."""
    real = os.path.realpath(card_path)
    match = re.fullmatch(r"/dev/dri/card(\d{1,3})", real)
    return int(match.group(1)) if match else None


def helper_state(path: Path | None = None) -> tuple[bool, str]:
    """(usable, what was found) for ``rootstream doctor``: is the helper installed
    with its capability, and runnable by this user?"""
    path = path or helper_path()
    if not path.exists():
        return False, f"{path} is not installed; " + install_hint()
    if not os.access(path, os.X_OK):
        return False, (f"{path} is not executable by this user (it is meant for the video "
                       "group): sudo usermod -aG video $USER, then log in again")
    caps = _file_caps(path)
    if caps is not None and "cap_sys_admin" not in caps:
        return False, f"{path} lacks its capability: sudo setcap cap_sys_admin+ep {path}"
    return True, f"{path} ({caps or 'capabilities not checked: getcap is not installed'})"


def _file_caps(path: Path) -> str | None:
    getcap = shutil.which("getcap") or next(
        (p for p in ("/usr/sbin/getcap", "/sbin/getcap") if os.access(p, os.X_OK)), None)
    if getcap is None:
        return None
    done = subprocess.run([getcap, str(path)], capture_output=True, text=True, check=False)
    return done.stdout.strip().replace(str(path), "").strip() or "no file capabilities"


class KmsHelper:
    """One running rootstream-kms-helper for one card, spoken to over a socketpair."""

    def __init__(self, card: int, path: Path | None = None, *, stderr=None):
        self.path = path or helper_path()
        self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            # No environment: the helper clears it anyway, and nothing of the
            # host's (LD_PRELOAD, ...) should reach a program with a capability.
            self._proc = subprocess.Popen([str(self.path), str(card)], stdin=theirs,
                                          stdout=subprocess.DEVNULL, stderr=stderr, env={},
                                          close_fds=True)
        except OSError as exc:
            self._sock.close()
            raise DrmError(f"cannot start {self.path}: {os.strerror(exc.errno)}",
                           hint=install_hint()) from exc
        finally:
            theirs.close()
        self._sock.settimeout(ANSWER_TIMEOUT)

    def ask(self, plane_id: int, known_fb_id: int = 0) -> tuple[Reply, list[int]]:
        """The helper's answer about ``plane_id``, and the fds that came with it (owned
        by the caller)."""
        try:
            self._sock.send(bytes(Request(plane_id, known_fb_id)))
            data, fds, flags, _ = socket.recv_fds(self._sock, REPLY.size + 1, 4)
        except TimeoutError as exc:
            raise DrmError(f"{self.path.name} did not answer within {ANSWER_TIMEOUT:g} s") from exc
        except OSError as exc:
            raise self._gone(exc) from exc
        try:
            if not data:
                raise self._gone(None)
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                raise HelperProtocolError("kms helper reply is too long")
            reply = Reply.parse(data)
            if reply.fd_count != len(fds) or reply.plane_id not in (plane_id, 0):
                raise HelperProtocolError("kms helper reply does not match the request")
        except HelperProtocolError as exc:
            for fd in fds:
                os.close(fd)
            raise HelperProtocolError(str(exc), hint=mismatch_hint()) from exc
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return reply, fds

    def _gone(self, exc: OSError | None) -> DrmError:
        try:
            code = self._proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            code = None
        why = f"exited with status {code}" if code is not None else f"broke the socket ({exc})"
        return DrmError(f"{self.path.name} {why}", hint="its error is on the host's stderr")

    def close(self) -> None:
        """Close the socket: the helper sees EOF and exits."""
        self._sock.close()
        try:
            self._proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stderr is not None:  # a caller that asked for a pipe
            self._proc.stderr.close()

    @property
    def pid(self) -> int:
        return self._proc.pid


class ExportedPlanes:
    """What planes show, read through the helper and mapped with ``mapper``.

    Keeps the buffer last received per plane: the helper answers "unchanged"
    while the plane still shows it, so a static screen costs one round trip
    and no new mapping.
    """

    def __init__(self, helper: KmsHelper, mapper: BufferMapper):
        self.helper = helper
        self.mapper = mapper
        self._held: dict[int, tuple[Framebuffer, Mapping]] = {}

    def read(self, plane_id: int) -> tuple[Framebuffer, Mapping] | None:
        """(framebuffer, mapping open for reading) of what ``plane_id`` shows; None if
        it shows nothing.  DrmIoctlError(ENOENT) when the buffer went away mid-read."""
        held = self._held.get(plane_id)
        reply, fds = self.helper.ask(plane_id, held[0].id if held else 0)
        if reply.status == Status.UNCHANGED and held and self.mapper.reread(held[1]):
            return held
        if reply.status == Status.UNCHANGED:  # we let that mapping go meanwhile: start over
            self._held.pop(plane_id, None)
            reply, fds = self.helper.ask(plane_id, 0)
        if reply.status == Status.OFF:
            self._held.pop(plane_id, None)
            return None
        if reply.status != Status.NEW:
            raise self._failure(reply)
        for fd in fds[1:]:
            os.close(fd)  # the formats KMS capture reads are single-plane
        fb = reply.framebuffer()
        mapping = self.mapper.map_dmabuf(fds[0], fb)
        self._held[plane_id] = (fb, mapping)
        return fb, mapping

    def _failure(self, reply: Reply) -> DrmError:
        name = self.helper.path.name
        if reply.status == Status.REFUSED:
            return HelperProtocolError(f"{name} refused a request (see its line on stderr)",
                                       hint=mismatch_hint())
        if reply.status == Status.UNCHANGED:
            return HelperProtocolError(f"{name} answered 'unchanged' to a fresh request")
        if reply.error == errno_codes.EPERM:
            return DrmIoctlError(f"{name} has no CAP_SYS_ADMIN: the kernel withheld the "
                                 "framebuffer handles", errno=reply.error,
                                 hint=f"sudo setcap cap_sys_admin+ep {self.helper.path}")
        return DrmIoctlError(f"{name} could not read plane {reply.plane_id}: "
                             f"{os.strerror(reply.error)}", errno=reply.error)

    def close(self) -> None:
        self._held.clear()
        self.helper.close()


def start_for(card_path: str, mapper: BufferMapper) -> ExportedPlanes | None:
    """The helper's planes for a capture on ``card_path``, or None when the helper
    cannot help: this process already has CAP_SYS_ADMIN, the card is not a
    /dev/dri/cardN, or no helper is installed."""
    number = card_number(card_path)
    if number is None or has_cap_sys_admin() or not helper_path().exists():
        return None
    return ExportedPlanes(KmsHelper(number), mapper)


__all__ = ["ExportedPlanes", "HELPER_NAME", "INSTALLED", "KmsHelper", "built_helper",
           "card_number", "has_cap_sys_admin", "helper_state", "install_commands",
           "install_hint", "start_for"]
