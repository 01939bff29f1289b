"""rootstream-kms-helper against a real kernel (vkms in the test VM).

The test, as root, is the DRM master (tests/kms_scanout.py): it shows pictures
it drew itself in dumb framebuffers (SETCRTC, a page flip to a second buffer,
a cursor on the cursor plane).  The host is a separate process running as an unprivileged user in
the video group, without CAP_SYS_ADMIN, with the helper installed as the
README says (root:video 0750, cap_sys_admin+ep): its frames must be exactly
the pixels on screen, through a buffer change and with the cursor blended.
"""

from __future__ import annotations

import errno
import grp
import json
import mmap
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from kms_scanout import DRM_FORMAT_ARGB8888, Scanout, pattern, vkms_card

from rootstream._native import drm as kms
from rootstream._native.drm_abi import DRM_FORMAT_XRGB8888
from rootstream._native.drm_map import BufferMapper, plane_view
from rootstream._native.kms_helper_protocol import REPLY, Reply, Request, Status
from rootstream.capture.kms_grant import ExportedPlanes, KmsHelper, built_helper, card_number

pytestmark = [
    pytest.mark.kms,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to be the DRM master and install "
                       "the helper with its capability; tests/test_vm_kernel.py runs it so"),
]
CURSOR_AT = (100, 50)


@pytest.fixture
def card() -> str:
    return vkms_card()


@pytest.fixture
def display(card):
    with Scanout(card) as master:
        yield master


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
import json, os, sys
import numpy as np
from rootstream.capture.kms import KmsCapture
from rootstream.capture.kms_grant import has_cap_sys_admin

out = {"cap_sys_admin": has_cap_sys_admin(), "uid": os.getuid()}
with KmsCapture(sys.argv[2], fps=1000, cursor=sys.argv[3] == "cursor") as capture:
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


def as_nobody(helper: Path) -> dict:
    """subprocess arguments: user nobody in group video, finding ``helper``."""
    unprivileged_python()
    return {"env": dict(os.environ, ROOTSTREAM_KMS_HELPER=str(helper)), "user": 65534,
            "group": 65534, "extra_groups": [grp.getgrnam("video").gr_gid], "cwd": "/"}


def run_host(helper: Path, card: str, work: Path, cursor: bool, between):
    """The host, unprivileged, grabbing three frames; ``between(step)`` runs
    after each grab.  Its report and the three frames as (h, w, 4)."""
    host = subprocess.Popen(
        [sys.executable, "-c", HOST, str(work), card, "cursor" if cursor else "plain"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        **as_nobody(helper))
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
    frames = [np.load(work / f"{i}.npy") for i in range(3)]
    return json.loads(out.splitlines()[-1]), [f.reshape(f.shape[0], -1, 4) for f in frames]


def _helpers_running() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text() == "rootstream-kms-\n":
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_unprivileged_host_gets_the_exact_pixels(card, display, installed, shared):
    width, height = display.mode.width, display.mode.height
    pictures = [pattern(width, height, seed) for seed in (11, 12)]
    first, second = (display.buffer(p) for p in pictures)
    display.show(first)

    out, frames = run_host(installed, card, shared, False,
                           lambda step: display.flip(second) if step == 0 else None)
    assert out["uid"] == 65534 and out["cap_sys_admin"] is False
    assert out["describe0"].endswith(f"; buffers from {installed}; cursor not shown: disabled")
    # Grab 2 follows the flip (a new buffer); grab 3 is the same buffer ("unchanged").
    for frame, picture in zip(frames, [pictures[0], pictures[1], pictures[1]], strict=True):
        assert np.array_equal(frame, picture)
    assert _helpers_running() == []  # it went with the host


def test_the_cursor_comes_through_the_helper_too(card, display, installed, shared):
    width, height = display.mode.width, display.mode.height
    screen = pattern(width, height, 13)
    display.show(display.buffer(screen))
    cursor = np.zeros((64, 64, 4), np.uint8)
    cursor[8:16, 8:16] = (0, 0, 255, 255)  # an opaque red square, premultiplied
    display.cursor(display.buffer(cursor, DRM_FORMAT_ARGB8888), *CURSOR_AT)

    out, frames = run_host(installed, card, shared, True, lambda step: None)
    x, y = CURSOR_AT
    expected = screen.copy()
    expected[y + 8:y + 16, x + 8:x + 16, :3] = (0, 0, 255)
    assert "cursor not shown" not in out["describe0"], out["describe0"]
    assert np.array_equal(frames[0], expected)


def test_a_helper_without_its_capability_is_reported(card, display, installed):
    display.show(display.buffer(pattern(display.mode.width, display.mode.height, 14)))
    subprocess.run(["setcap", "-r", str(installed)], check=True)
    opening = f"from rootstream.capture.kms import KmsCapture; KmsCapture({card!r})"
    done = subprocess.run([sys.executable, "-c", opening], capture_output=True, text=True,
                          timeout=300, check=False, **as_nobody(installed))
    assert done.returncode != 0
    assert ("CaptureError: rootstream-kms-helper has no CAP_SYS_ADMIN: the kernel withheld "
            "the framebuffer handles") in done.stderr


def test_malformed_requests_next_to_a_real_card(card, display):
    """Root runs the helper here (it keeps CAP_SYS_ADMIN): bad requests are refused,
    a good one gets the screen's buffer as a dma-buf with its exact description."""
    width, height = display.mode.width, display.mode.height
    picture = pattern(width, height, 15)
    buf = display.buffer(picture)
    display.show(buf)
    primary = kms.choose_capture_output(kms.read_topology(display.card)).primary.plane.id
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    helper = subprocess.Popen([str(built_helper()), str(card_number(card))], stdin=theirs,
                              stderr=subprocess.PIPE)
    theirs.close()
    mine.settimeout(10)

    def ask(data: bytes):
        mine.send(data)
        reply, fds, _, _ = socket.recv_fds(mine, REPLY.size, 4)
        return Reply.parse(reply), fds

    for bad in (b"x", bytes(Request(primary)) + b"!", bytes(Request(primary, kind=9))):
        assert ask(bad)[0].status == Status.REFUSED
    assert ask(bytes(Request(0xFFFFFF)))[0] == Reply(Status.FAILED, 0xFFFFFF, error=errno.ENOENT)
    reply, fds = ask(bytes(Request(primary)))
    assert reply.status == Status.NEW and len(fds) == 1
    assert (reply.fb_id, reply.width, reply.height, reply.pixel_format, reply.pitches[0]) == (
        buf.fb_id, width, height, DRM_FORMAT_XRGB8888, buf.pitch)
    with mmap.mmap(fds[0], height * buf.pitch, prot=mmap.PROT_READ) as region:
        rows = np.frombuffer(region, np.uint8).reshape(height, buf.pitch)
        assert np.array_equal(rows[:, :width * 4].reshape(height, width, 4), picture)
        del rows
    assert ask(bytes(Request(primary, buf.fb_id)))[0].status == Status.UNCHANGED
    for fd in fds:
        os.close(fd)
    mine.close()
    assert helper.wait(timeout=10) == 0
    with helper.stderr:
        assert len(helper.stderr.read().decode().splitlines()) == 3


PROBE = """
import json, sys
from rootstream.capture.kms import probe_steps
print(json.dumps(probe_steps(sys.argv[1])))
"""


def test_doctor_walks_the_helper_step(card, display, installed):
    width, height = display.mode.width, display.mode.height
    buf = display.buffer(pattern(width, height, 16))
    display.show(buf)
    done = subprocess.run([sys.executable, "-c", PROBE, card], capture_output=True, text=True,
                          timeout=300, check=False, **as_nobody(installed))
    assert done.returncode == 0, done.stderr
    steps = {name: (ok, found) for name, ok, found in json.loads(done.stdout)}
    assert steps["readable"] == (True, "BGRX")
    ok, found = steps["kms helper"]
    assert ok and found.startswith(
        f"{installed} (cap_sys_admin=ep); exported fb {buf.fb_id} {width}x{height} XR24 "
        f"pitch {buf.pitch} linear handle 0 as a dma-buf")
    assert steps["grab"][0] and steps["grab"][1].startswith(f"frame {width}x{height} BGRX")
    assert "map" not in steps  # the host maps nothing of its own without the handles


def test_a_mapping_let_go_is_asked_for_again(card, display):
    """The host keeps few mappings: when the one the helper calls "unchanged" has
    been evicted, the host asks afresh and still reads the right pixels."""
    width, height = display.mode.width, display.mode.height
    screen = pattern(width, height, 17)
    display.show(display.buffer(screen))
    display.cursor(display.buffer(pattern(64, 64, 18), DRM_FORMAT_ARGB8888), 10, 10)
    output = kms.choose_capture_output(kms.read_topology(display.card))
    mapper = BufferMapper(display.card, capacity=1)  # room for one buffer only
    planes = ExportedPlanes(KmsHelper(card_number(card), built_helper()), mapper)
    statuses = []
    ask = planes.helper.ask

    def noting(*args):
        reply, fds = ask(*args)
        statuses.append(reply.status)
        return reply, fds

    planes.helper.ask = noting
    try:
        fb, mapping = planes.read(output.primary.plane.id)
        # A second holder keeps the dma-buf (so the buffer's identity) alive
        # after the host lets its mapping go, as a compositor's reference would.
        holder = os.dup(mapping.dmabuf_fd)
        assert planes.read(output.cursor.plane.id)[0].width == 64  # evicts the screen's
        mapper.end_read()
        fb_again, mapping_again = planes.read(output.primary.plane.id)
        os.close(holder)
        assert statuses == [Status.NEW, Status.NEW, Status.UNCHANGED, Status.NEW]
        assert fb_again.id == fb.id and mapping_again is not mapping
        rows = plane_view(mapping_again, fb_again)
        assert np.array_equal(rows[:, :width * 4].reshape(height, width, 4), screen)
        del rows
    finally:
        mapper.close()
        planes.close()
