"""rootstream-kms-helper against a real kernel (vkms in the test VM).

The test, as root, is the DRM master: it shows pictures it drew itself in
dumb framebuffers (SETCRTC, then a second buffer, then a cursor on the cursor
plane).  The host is a separate process running as an unprivileged user in
the video group, without CAP_SYS_ADMIN, with the helper installed as the
README says (root:video 0750, cap_sys_admin+ep): its frames must be exactly
the pixels on screen, through a buffer change and with the cursor blended.
"""

from __future__ import annotations

import fcntl
import grp
import json
import mmap
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from rootstream._native import drm as kms
from rootstream._native.drm_abi import DRM_FORMAT_ARGB8888, DRM_FORMAT_XRGB8888
from rootstream._native.drm_ioctl import DRM_IOCTL_BASE, ioc
from rootstream._native.kms_helper_protocol import REPLY, Reply, Request, Status
from rootstream.capture.kms_grant import built_helper

CARD = "/dev/dri/card0"
pytestmark = [
    pytest.mark.hardware(reason="needs /dev/dri/card0 with a display (vkms in the test VM)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to be the DRM master"),
]

# struct drm_mode_set_plane: plane, crtc, fb, flags, crtc x/y (signed), crtc w/h,
# src x/y/h/w (16.16 fixed point): DRM_IOCTL_MODE_SETPLANE, to show a cursor.
SET_PLANE = struct.Struct("=IIIIiiIIIIII")
DRM_IOCTL_MODE_SETPLANE = ioc(3, DRM_IOCTL_BASE, 0xB7, SET_PLANE.size)  # 3: read|write on x86
CURSOR_AT = (100, 50)


def picture(width: int, height: int, pitch: int, seed: int, alpha: bool = False) -> np.ndarray:
    """(height, pitch) bytes no two rows or columns of which are alike."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x & 255, y & 255, (x >> 8) * 16 + (y >> 8) + seed * 64,
                       np.full_like(x, 255 if alpha else seed)], axis=-1).astype(np.uint8)
    rows = np.zeros((height, pitch), np.uint8)
    rows[:, :width * 4] = pixels.reshape(height, width * 4)
    return rows


class Display:
    """What a compositor does, minimally: dumb buffers on the CRTC, as DRM master."""

    def __init__(self):
        self.card = kms.open_card(CARD)
        topology = kms.read_topology(self.card)
        self.output = kms.choose_present_output(topology, None, 0, 0)
        self.mode = self.output.mode
        self.width, self.height = self.mode.width, self.mode.height
        self.buffers: list[tuple[int, int, int, mmap.mmap]] = []

    def framebuffer(self, width: int, height: int, fmt: int, rows) -> int:
        handle, pitch, size = self.card.create_dumb(width, height)
        region = mmap.mmap(self.card.fd, size, offset=self.card.map_dumb(handle))
        region[:height * pitch] = rows(pitch).tobytes()
        fb_id = self.card.addfb2(width, height, fmt, handle, pitch)
        self.buffers.append((fb_id, handle, pitch, region))
        return fb_id

    def show(self, fb_id: int) -> None:
        self.card.set_crtc(self.output.crtc_id, fb_id, 0, 0, [self.output.connector.id],
                           self.mode)

    def set_plane(self, plane_id: int, fb_id: int, x: int, y: int, size: int) -> None:
        args = bytearray(SET_PLANE.pack(plane_id, self.output.crtc_id if fb_id else 0, fb_id,
                                        0, x, y, size, size, 0, 0, size << 16, size << 16))
        fcntl.ioctl(self.card.fd, DRM_IOCTL_MODE_SETPLANE, args)

    def close(self) -> None:
        self.card.set_crtc(self.output.crtc_id, 0, 0, 0, [], None)
        for fb_id, handle, _, region in self.buffers:
            region.close()
            self.card.rmfb(fb_id)
            self.card.destroy_dumb(handle)
        self.card.close()


@pytest.fixture
def display():
    shown = Display()
    yield shown
    shown.close()


@pytest.fixture
def shared():
    """A directory user nobody may write (pytest's tmp_path is under a 0700 one)."""
    folder = Path(tempfile.mkdtemp(prefix="kms-host-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder)


@pytest.fixture
def installed():
    """The helper installed as README says, in a directory the unprivileged user can reach."""
    folder = Path(tempfile.mkdtemp(prefix="kms-helper-"))
    folder.chmod(0o755)
    path = folder / "rootstream-kms-helper"
    shutil.copyfile(built_helper(), path)
    os.chown(path, 0, grp.getgrnam("video").gr_gid)
    path.chmod(0o750)
    subprocess.run(["setcap", "cap_sys_admin+ep", str(path)], check=True)
    yield path
    shutil.rmtree(folder)


HOST = """
import json, sys
import numpy as np
from rootstream.capture.kms import KmsCapture
from rootstream.capture.kms_grant import has_cap_sys_admin

out = {"cap_sys_admin": has_cap_sys_admin(), "uid": __import__("os").getuid()}
with KmsCapture("/dev/dri/card0", fps=1000, cursor=sys.argv[2] == "cursor") as capture:
    for step in range(3):
        frame = capture.grab(timeout=3)
        np.save(f"{sys.argv[1]}/{step}.npy", frame.pixels[:, :capture.width * 4])
        out[f"describe{step}"] = capture.describe()
        print("grabbed", flush=True)
        sys.stdin.readline()  # the display changes (or not) before the next grab
print(json.dumps(out), flush=True)
"""


def unprivileged_python() -> None:
    """Let user nobody run this interpreter: a root-made venv on a pyenv Python
    sits under /root.  Only inside the test VM (whose / is an overlay that
    vanishes with it) are directories opened; elsewhere the host simply fails
    to start and says why."""
    if os.environ.get("ROOTSTREAM_IN_VM") != "1":
        return
    for directory in Path(os.path.realpath(sys.executable)).parents:
        if not directory.stat().st_mode & 0o001:
            directory.chmod(directory.stat().st_mode | 0o001)


def run_host(helper: Path, work: Path, cursor: bool, between):
    """The host as user nobody in group video; ``between(step)`` runs between grabs."""
    env = dict(os.environ, ROOTSTREAM_KMS_HELPER=str(helper))
    unprivileged_python()
    host = subprocess.Popen(
        [sys.executable, "-c", HOST, str(work), "cursor" if cursor else "plain"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, user=65534, group=65534, extra_groups=[grp.getgrnam("video").gr_gid],
        cwd="/")
    try:
        for step in range(3):
            line = host.stdout.readline()
            if line != "grabbed\n":
                host.kill()
                pytest.fail(f"host failed at grab {step}: {line}{host.stderr.read()}")
            between(step)
            host.stdin.write("\n")
            host.stdin.flush()
        out, err = host.communicate(timeout=60)
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
    assert host.returncode == 0, err
    return json.loads(out.splitlines()[-1]), [np.load(work / f"{i}.npy") for i in range(3)]


def _helpers_running() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text() == "rootstream-kms-\n":
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_unprivileged_host_gets_the_exact_pixels(display, installed, shared):
    w, h = display.width, display.height
    first = display.framebuffer(w, h, DRM_FORMAT_XRGB8888, lambda p: picture(w, h, p, 1))
    second = display.framebuffer(w, h, DRM_FORMAT_XRGB8888, lambda p: picture(w, h, p, 2))
    display.show(first)

    out, frames = run_host(installed, shared, False,
                           lambda step: display.show(second) if step == 0 else None)
    assert out["uid"] == 65534 and out["cap_sys_admin"] is False
    assert out["describe0"].endswith(f"; buffers from {installed}; cursor not shown: disabled")
    expected = [picture(w, h, w * 4, seed) for seed in (1, 2, 2)]
    for step in range(3):
        assert np.array_equal(frames[step], expected[step][:, :w * 4]), step
    assert _helpers_running() == []  # it went with the host


def test_the_cursor_comes_through_the_helper_too(display, installed, shared):
    w, h = display.width, display.height
    screen = display.framebuffer(w, h, DRM_FORMAT_XRGB8888, lambda p: picture(w, h, p, 3))
    display.show(screen)
    topology = kms.read_topology(display.card)
    output = kms.choose_capture_output(topology)
    if output.cursor is None:
        pytest.fail("vkms shows no cursor plane (the VM loads it with enable_cursor=1)")
    cursor = np.zeros((64, 64 * 4), np.uint8)
    cursor.reshape(64, 64, 4)[8:16, 8:16] = (0, 0, 255, 255)  # opaque red square
    cursor_fb = display.framebuffer(64, 64, DRM_FORMAT_ARGB8888,
                                    lambda p: np.pad(cursor, ((0, 0), (0, p - 256))))
    display.set_plane(output.cursor.plane.id, cursor_fb, *CURSOR_AT, 64)

    out, frames = run_host(installed, shared, True, lambda step: None)
    expected = picture(w, h, w * 4, 3).reshape(h, w, 4).copy()
    x, y = CURSOR_AT
    expected[y + 8:y + 16, x + 8:x + 16, :3] = (0, 0, 255)
    assert "cursor not shown" not in out["describe0"], out["describe0"]
    assert np.array_equal(frames[0].reshape(h, w, 4), expected)


def test_a_helper_without_its_capability_is_reported(display, installed, shared):
    w, h = display.width, display.height
    display.show(display.framebuffer(w, h, DRM_FORMAT_XRGB8888, lambda p: picture(w, h, p, 1)))
    subprocess.run(["setcap", "-r", str(installed)], check=True)
    env = dict(os.environ, ROOTSTREAM_KMS_HELPER=str(installed))
    unprivileged_python()
    done = subprocess.run(
        [sys.executable, "-c", "from rootstream.capture.kms import KmsCapture; KmsCapture()"],
        capture_output=True, text=True, env=env, user=65534, group=65534,
        extra_groups=[grp.getgrnam("video").gr_gid], cwd="/", timeout=120)
    assert done.returncode != 0
    assert ("CaptureError: rootstream-kms-helper has no CAP_SYS_ADMIN: the kernel withheld "
            "the framebuffer handles") in done.stderr


def test_malformed_requests_next_to_a_real_card(display):
    """Root runs the helper here (it keeps CAP_SYS_ADMIN): bad requests are refused,
    a good one gets the screen's buffer as a dma-buf with its exact description."""
    import socket

    w, h = display.width, display.height
    fb_id = display.framebuffer(w, h, DRM_FORMAT_XRGB8888, lambda p: picture(w, h, p, 1))
    display.show(fb_id)
    primary = kms.choose_capture_output(kms.read_topology(display.card)).primary.plane.id
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    helper = subprocess.Popen([str(built_helper()), "0"], stdin=theirs, stderr=subprocess.PIPE)
    theirs.close()
    mine.settimeout(10)

    def ask(data: bytes):
        mine.send(data)
        reply, fds, _, _ = socket.recv_fds(mine, REPLY.size, 4)
        return Reply.parse(reply), fds

    for bad in (b"x", bytes(Request(primary)) + b"!", bytes(Request(primary, kind=9))):
        assert ask(bad)[0].status == Status.REFUSED
    assert ask(bytes(Request(0xFFFFFF)))[0].status == Status.FAILED  # no such plane
    reply, fds = ask(bytes(Request(primary)))
    assert reply.status == Status.NEW and len(fds) == 1
    pitch = display.buffers[0][2]
    assert (reply.fb_id, reply.width, reply.height, reply.pixel_format, reply.pitches[0]) == (
        fb_id, w, h, DRM_FORMAT_XRGB8888, pitch)
    region = mmap.mmap(fds[0], h * pitch, prot=mmap.PROT_READ)
    assert np.array_equal(np.frombuffer(region, np.uint8).reshape(h, pitch)[:, :w * 4],
                          picture(w, h, pitch, 1)[:, :w * 4])
    region.close()
    assert ask(bytes(Request(primary, fb_id)))[0].status == Status.UNCHANGED
    for fd in fds:
        os.close(fd)
    mine.close()
    assert helper.wait(timeout=10) == 0
    with helper.stderr:
        assert len(helper.stderr.read().decode().splitlines()) == 3


PROBE = """
import json
from rootstream.capture.kms import probe_steps
print(json.dumps(probe_steps("/dev/dri/card0")))
"""


def test_doctor_walks_the_helper_step(display, installed):
    w, h = display.width, display.height
    fb_id = display.framebuffer(w, h, DRM_FORMAT_XRGB8888, lambda p: picture(w, h, p, 1))
    display.show(fb_id)
    unprivileged_python()
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300,
        env=dict(os.environ, ROOTSTREAM_KMS_HELPER=str(installed)), user=65534, group=65534,
        extra_groups=[grp.getgrnam("video").gr_gid], cwd="/", check=False)
    assert done.returncode == 0, done.stderr
    steps = {name: (ok, found) for name, ok, found in json.loads(done.stdout)}
    assert steps["readable"] == (True, "BGRX")
    ok, found = steps["kms helper"]
    pitch = display.buffers[0][2]
    assert ok and found.startswith(f"{installed} (cap_sys_admin=ep); exported fb {fb_id} "
                                   f"{w}x{h} XR24 pitch {pitch} linear handle 0 as a dma-buf")
    assert steps["grab"][0] and steps["grab"][1].startswith(f"frame {w}x{h} BGRX")
    assert "map" not in steps  # the host maps nothing of its own without the handles
