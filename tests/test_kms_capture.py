"""KMS capture: its errors, framebuffer checks, views and cursor blending.

Without /dev/dri these run the real code up to the kernel boundary (opening
the device, checking recorded GETFB2 replies, mapping real memory); the
whole path on a real kernel is in the `kms` tests at the end (in the VM).
"""

from __future__ import annotations

import dataclasses
import errno
import mmap
import os
import runpy
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from rootstream._native.drm_abi import DRM_FORMAT_MOD_INVALID, DRM_FORMAT_XRGB8888, fourcc
from rootstream._native.drm_device import DrmIoctlError
from rootstream._native.drm_map import Mapping, plane_view
from rootstream._native.drm_parse import DrmError, Framebuffer, parse_fb2
from rootstream.capture.base import CaptureBackend
from rootstream.capture.kms import (
    PRIVILEGE_MESSAGE,
    KmsCapture,
    blend_cursor,
    check_framebuffer,
    fourcc_name,
    modifier_name,
    probe_steps,
)
from rootstream.capture.kms_grant import built_helper
from rootstream.errors import CaptureError

CARD = Path(__file__).parent / "data" / "drm" / "card-hdmi"


def fb_image(name: str) -> Framebuffer:
    return parse_fb2((CARD / f"{name}.bin").read_bytes())


# --- opening ---------------------------------------------------------------

def test_is_a_capture_backend():
    assert issubclass(KmsCapture, CaptureBackend) and KmsCapture.name == "kms"


@pytest.mark.skipif(Path("/dev/dri").exists(), reason="this machine has /dev/dri")
def test_no_dri_directory():
    with pytest.raises(CaptureError) as info:
        KmsCapture()
    assert str(info.value) == "no DRM device: /dev/dri does not exist"
    assert info.value.hint == (
        "KMS needs a GPU with a kernel modesetting driver loaded; or use --source x11")
    steps = probe_steps()
    assert steps == [("cards", False, "no DRM device: /dev/dri does not exist "
                      "(hint: KMS needs a GPU with a kernel modesetting driver loaded)")]


def test_named_device_in_a_missing_directory(tmp_path):
    with pytest.raises(CaptureError, match="^no DRM device: /dev/dri does not exist$") as info:
        KmsCapture(device=str(tmp_path / "dri" / "card0"))
    assert info.value.hint.endswith("or use --source x11")


def test_named_device_missing(tmp_path):
    with pytest.raises(CaptureError, match=f"^no DRM device at {tmp_path}/card7$"):
        KmsCapture(device=str(tmp_path / "card7"))


def test_not_a_drm_device():
    with pytest.raises(CaptureError, match="^/dev/null is not a DRM device$"):
        KmsCapture(device="/dev/null")


def _error_as_nobody(device: str) -> tuple[str, str]:
    """KmsCapture(device)'s error in a forked child that dropped root (uid nobody)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                KmsCapture(device=device)
            except CaptureError as exc:
                os.write(write_end, f"{exc}\n{exc.hint}".encode())
                status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        text = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, text
    message, hint = text.split("\n")
    return message, hint


def test_not_in_the_video_group():
    """A card the user may not open: the hint says video group, udev rule, or x11."""
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        card = Path(folder) / "card0"
        card.touch()
        if os.geteuid() == 0:
            os.chmod(card, 0o660)  # like /dev/dri/card0: root:video rw-rw----
            message, hint = _error_as_nobody(str(card))
        else:
            os.chmod(card, 0o000)  # our own file, but no access for anyone
            with pytest.raises(CaptureError) as info:
                KmsCapture(device=str(card))
            message, hint = str(info.value), info.value.hint
    assert message == f"cannot open {card}: permission denied"
    assert "usermod -aG video" in hint and "60-rootstream.rules" in hint
    assert hint.endswith("or use --source x11")


# --- framebuffers ----------------------------------------------------------

def test_linear_xrgb_is_bgrx():
    assert check_framebuffer(fb_image("fb-84")) == "BGRX"


@pytest.mark.parametrize("code, expected", [
    ("XR24", "BGRX"), ("AR24", "BGRA"), ("XB24", "RGBX"), ("AB24", "RGBA"),
])
def test_pixel_formats(code, expected):
    fb = fb_image("fb-84")
    fb = Framebuffer(fb.id, fb.width, fb.height, fourcc(code), fb.handles, fb.pitches,
                     fb.offsets, fb.modifier)
    assert check_framebuffer(fb) == expected


def test_missing_privileges():
    with pytest.raises(CaptureError) as info:
        check_framebuffer(fb_image("fb-84-unprivileged"))
    assert str(info.value) == PRIVILEGE_MESSAGE
    # The capability goes on the helper alone, never on the Python binary.
    assert info.value.hint == (
        f"install the KMS helper: sudo install -D -o root -g video -m 0750 {built_helper()} "
        "/usr/local/libexec/rootstream-kms-helper && "
        "sudo setcap cap_sys_admin+ep /usr/local/libexec/rootstream-kms-helper; "
        "or use --source x11")
    assert os.path.realpath(sys.executable) not in info.value.hint


def test_tiled_framebuffer():
    with pytest.raises(CaptureError) as info:
        check_framebuffer(fb_image("fb-85-tiled"))
    assert str(info.value) == (
        "the display shows a tiled or compressed framebuffer "
        "(INTEL modifier 0x0100000000000001); KMS capture reads linear buffers only")
    assert "--source x11" in info.value.hint


def test_unknown_modifier_is_never_taken_for_linear():
    fb = dataclasses.replace(fb_image("fb-84"), modifier=DRM_FORMAT_MOD_INVALID)
    with pytest.raises(CaptureError, match="does not say how the display's framebuffer is laid"):
        check_framebuffer(fb)
    assert modifier_name(DRM_FORMAT_MOD_INVALID) == "modifier unknown"


def test_tiling_is_reported_before_missing_privileges():
    # A user on a tiled desktop is not sent to grant a capability first.
    tiled = fb_image("fb-85-tiled")
    unprivileged = dataclasses.replace(tiled, handles=(0, 0, 0, 0))
    with pytest.raises(CaptureError, match="tiled or compressed"):
        check_framebuffer(unprivileged)


def test_unsupported_format():
    fb = fb_image("fb-84")
    deep = Framebuffer(fb.id, fb.width, fb.height, fourcc("XR30"), fb.handles, fb.pitches,
                       fb.offsets, fb.modifier)
    with pytest.raises(CaptureError, match=r"pixel format XR30 is not supported \(only XR24, "):
        check_framebuffer(deep)


def test_names():
    assert fourcc_name(DRM_FORMAT_XRGB8888) == "XR24"
    assert fourcc_name(0x01020304) == "0x01020304"
    assert modifier_name((0x02 << 56) | 5) == "AMD modifier 0x0200000000000005"
    assert modifier_name((0x7F << 56) | 1) == "vendor 0x7f modifier 0x7f00000000000001"
    assert modifier_name(0) == "linear"


# --- views of a mapped buffer (real mmap of a file) -------------------------

def _mapping(tmp_path, data: bytes) -> Mapping:
    path = tmp_path / "buffer"
    path.write_bytes(data)
    with open(path, "rb") as f:
        region = mmap.mmap(f.fileno(), len(data), access=mmap.ACCESS_READ)
    return Mapping(("file",), region, -1, len(data))


def _fb(width, height, pitch, offset=0) -> Framebuffer:
    return Framebuffer(1, width, height, DRM_FORMAT_XRGB8888, (1, 0, 0, 0),
                       (pitch, 0, 0, 0), (offset, 0, 0, 0), 0)


def test_plane_view_is_a_read_only_view(tmp_path):
    pixels = np.arange(4 * 40 * 3, dtype=np.uint32).astype(np.uint8)  # 3 rows, pitch 40*4
    mapping = _mapping(tmp_path, bytes(16) + pixels.tobytes())
    view = plane_view(mapping, _fb(32, 3, 160, offset=16))
    assert view.shape == (3, 160) and not view.flags.writeable
    assert np.array_equal(view.ravel(), pixels)
    with pytest.raises(ValueError):
        view[0, 0] = 1
    mapping.release()


def test_plane_view_starts_at_the_crtc_corner(tmp_path):
    frame = np.arange(8 * 64, dtype=np.uint32).reshape(8, 64)  # 64 px wide, pitch 256
    mapping = _mapping(tmp_path, frame.tobytes() + bytes(4096))
    view = plane_view(mapping, _fb(64, 8, 256), x=16, y=2, width=32, height=4)
    assert view.shape == (4, 256)
    words = view.view(np.uint32)
    assert np.array_equal(words[:, :32], frame[2:6, 16:48])
    mapping.release()


def test_plane_view_copies_when_the_last_row_would_overrun(tmp_path):
    frame = np.arange(4 * 16, dtype=np.uint32).reshape(4, 16)
    mapping = _mapping(tmp_path, frame.tobytes())  # no slack after the last row
    view = plane_view(mapping, _fb(16, 4, 64), x=8, y=2, width=8, height=2)
    assert view.shape == (2, 32)
    assert np.array_equal(view.view(np.uint32), frame[2:4, 8:16])
    mapping.release()


def test_plane_view_outside_the_framebuffer(tmp_path):
    mapping = _mapping(tmp_path, bytes(64 * 4))
    with pytest.raises(DrmError, match="outside framebuffer"):
        plane_view(mapping, _fb(16, 4, 64), x=8, y=0, width=16, height=4)
    mapping.release()


# --- cursor ---------------------------------------------------------------

def _canvas(value=(10, 20, 30, 0), h=8, w=8):
    return np.tile(np.array(value, np.uint8), (h, w, 1))


def test_premultiplied_cursor():
    canvas = _canvas()
    cursor = np.zeros((2, 2, 4), np.uint8)
    cursor[0, 0] = (255, 255, 255, 255)  # opaque white
    cursor[0, 1] = (64, 0, 0, 128)  # half-transparent, premultiplied blue
    blend_cursor(canvas, cursor, 3, 4)
    assert tuple(canvas[4, 3]) == (255, 255, 255, 0)
    assert tuple(canvas[4, 4]) == (64 + 5, 10, 15, 0)
    assert tuple(canvas[5, 3]) == (10, 20, 30, 0)  # alpha 0: untouched
    assert tuple(canvas[0, 0]) == (10, 20, 30, 0)


def test_coverage_and_none_blend_modes():
    cursor = np.array([[[200, 100, 0, 128]]], np.uint8)
    canvas = _canvas()
    blend_cursor(canvas, cursor, 0, 0, blend="Coverage")
    assert tuple(canvas[0, 0]) == (105, 60, 15, 0)
    canvas = _canvas()
    blend_cursor(canvas, cursor, 0, 0, blend="None")
    assert tuple(canvas[0, 0]) == (200, 100, 0, 0)


def test_cursor_clipped_at_the_edges():
    canvas = _canvas(value=(0, 0, 0, 0), h=4, w=4)
    cursor = np.full((3, 3, 4), 255, np.uint8)
    blend_cursor(canvas, cursor, -1, -2)  # as CRTC_Y = -5 leaves the top off screen
    assert canvas[..., 0].tolist() == [[255, 255, 0, 0], [0, 0, 0, 0],
                                       [0, 0, 0, 0], [0, 0, 0, 0]]
    blend_cursor(canvas, cursor, 3, 3)
    assert canvas[3, 3, 0] == 255 and canvas[2, 3, 0] == 0
    before = canvas.copy()
    blend_cursor(canvas, cursor, 10, 10)
    blend_cursor(canvas, cursor, -3, 0)
    assert np.array_equal(canvas, before)


def test_cursor_on_an_rgbx_frame_swaps_red_and_blue():
    canvas = _canvas(value=(0, 0, 0, 0), h=1, w=1)
    blend_cursor(canvas, np.array([[[255, 0, 0, 255]]], np.uint8), 0, 0, swap_rb=True)
    assert tuple(canvas[0, 0]) == (0, 0, 255, 0)


# --- on a real GPU ---------------------------------------------------------

@pytest.mark.kms
def test_capture_on_real_hardware():
    with KmsCapture(fps=30) as capture:
        assert capture.width > 0 and capture.height > 0
        frames = [capture.grab(timeout=1.0) for _ in range(3)]
        frames = [f for f in frames if f is not None]
        assert frames, "no frame in 3 s"
        frame = frames[-1]
        assert frame.pixel_format in ("BGRX", "BGRA", "RGBX", "RGBA")
        assert frame.pixels.shape[0] == frame.height == capture.height
        assert frame.stride >= frame.width * 4 and frame.stamps.captured > 0
        assert [f.sequence for f in frames] == list(range(len(frames)))
        assert "kms" in repr(capture)


@pytest.mark.kms
def test_probe_on_real_hardware():
    steps = KmsCapture.probe()
    for name, ok, found in steps:
        print(f"{name}: {'ok' if ok else 'FAILED'}: {found}")
    assert all(ok for _, ok, _ in steps), steps
    assert [name for name, _, _ in steps][-1] == "grab"


# --- the whole grab path over recorded replies -----------------------------

# tests/ is not a package: the shared replay card is loaded by path.
ReplayCard = runpy.run_path(str(CARD.parent / "replay.py"))["ReplayCard"]


def _screen(value: int) -> bytes:
    return np.full((ReplayCard.HEIGHT, ReplayCard.PITCH), value, np.uint8).tobytes()


@pytest.fixture
def replay():
    card = ReplayCard()
    card.write(1, _screen(10))
    card.write(4, _screen(20))
    cursor = np.zeros((64, 64, 4), np.uint8)
    cursor[5:9, 0:4] = (255, 255, 255, 255)  # rows 0-4 sit above the screen (CRTC_Y -5)
    card.write(2, cursor.tobytes())
    return card


def test_grab_follows_page_flips_and_blends_the_cursor(replay):
    with KmsCapture(device=replay, fps=1000) as capture:
        assert (capture.width, capture.height, capture.pixel_format) == (1920, 1080, "BGRX")
        first = capture.grab(timeout=1.0)
        assert first.sequence == 0 and first.pixels.shape == (1080, 7680)
        assert capture.cursor_note == "" and "MAP_DUMB" in capture.describe()
        # The cursor at (800, -5): its rows 5-8 land on screen rows 0-3.
        assert tuple(first.pixels[0, 800 * 4:800 * 4 + 4]) == (255, 255, 255, 10)
        assert first.pixels[4, 800 * 4] == 10 and first.pixels[0, 804 * 4] == 10
        replay.plane_fb[31] = 86  # the compositor flips to its other buffer
        second = capture.grab(timeout=1.0)
        assert second.sequence == 1 and second.pixels[500, 0] == 20
        replay.plane_fb[40] = 0  # the cursor is hidden: a view, no copy
        third = capture.grab(timeout=1.0)
        assert capture.cursor_note == "cursor not shown: the cursor is hidden"
        assert not third.pixels.flags.writeable and third.pixels[0, 800 * 4] == 20
    assert sorted(replay.handles_closed) == sorted(replay.handles_out)


def test_grab_without_cursor_is_a_view_of_the_mapping(replay):
    with KmsCapture(device=replay, fps=1000, cursor=False) as capture:
        frame = capture.grab(timeout=1.0)
        assert not frame.pixels.flags.writeable and frame.pixels[0, 800 * 4] == 10
        assert capture.cursor_note == "cursor not shown: disabled"
        replay.plane_fb[31] = 0  # the display blanks: nothing to grab
        assert capture.grab(timeout=0.5) is None
    assert sorted(replay.handles_closed) == sorted(replay.handles_out)


def test_a_cursor_freed_mid_read_costs_only_the_cursor(replay):
    recorded = replay.getfb2

    def getfb2(fb_id):
        if fb_id == 90:
            raise DrmIoctlError("DRM_IOCTL_MODE_GETFB2 failed: No such file or directory",
                                errno=errno.ENOENT)
        return recorded(fb_id)

    replay.getfb2 = getfb2
    with KmsCapture(device=replay, fps=1000) as capture:
        frame = capture.grab(timeout=1.0)
        assert frame is not None and frame.pixels[0, 800 * 4] == 10
        assert capture.cursor_note == (
            "cursor not shown: DRM_IOCTL_MODE_GETFB2 failed: No such file or directory")


def test_tiled_flip_mid_stream_is_a_capture_error(replay):
    with KmsCapture(device=replay, fps=1000, cursor=False) as capture:
        capture.grab(timeout=1.0)
        replay.plane_fb[31] = 85  # an X-tiled buffer
        with pytest.raises(CaptureError, match="tiled or compressed"):
            capture.grab(timeout=1.0)
    assert sorted(replay.handles_closed) == sorted(replay.handles_out)


def test_missing_privileges_are_reported_at_open(replay):
    replay.getfb2 = lambda fb_id: parse_fb2((CARD / "fb-84-unprivileged.bin").read_bytes())
    with pytest.raises(CaptureError, match="^KMS capture needs CAP_SYS_ADMIN"):
        KmsCapture(device=replay)
    assert replay.fd == -1  # closed on the way out


def test_probe_walks_every_step_on_a_replayed_card(replay):
    steps = KmsCapture.probe(device=replay)
    assert [name for name, _, _ in steps] == [
        "open", "driver", "capabilities", "topology", "output", "scanout formats",
        "framebuffer", "readable", "map", "map-dumb fallback", "grab"]
    assert all(ok for _, ok, _ in steps), steps
    found = {name: text for name, _, text in steps}
    assert found["driver"] == "i915 1.6.0 (Intel Graphics)"
    assert found["capabilities"] == "dumb buffers yes, PRIME export no, atomic yes"
    assert found["topology"] == ("HDMI-A-1: connected, showing 1920x1080@60.00 on CRTC 51; "
                                 "DP-1: disconnected")
    assert found["output"] == ("HDMI-A-1 on CRTC 51 (1920x1080@60.00), primary plane 31, "
                               "cursor plane 40")
    assert found["scanout formats"] == "3 formats; linear 32-bit: XR24, AR24, XB24"
    assert found["framebuffer"] == "fb 84 1920x1080 XR24 pitch 7680 linear handle 1"
    assert found["map"].startswith("mapped 8294400 bytes via dumb (PRIME export failed")
    assert found["map"].endswith("mean byte 10.0")
    assert found["grab"] == "frame 1920x1080 BGRX stride 7680; cursor shown"
    assert replay.fd == -1
    assert sorted(replay.handles_closed) == sorted(replay.handles_out)


def test_probe_stops_where_the_next_steps_cannot_run(replay):
    replay.getfb2 = lambda fb_id: parse_fb2((CARD / "fb-85-tiled.bin").read_bytes())
    steps = KmsCapture.probe(device=replay)
    assert steps[-1][0] == "readable" and not steps[-1][1]
    assert "tiled or compressed" in steps[-1][2] and "(hint: " in steps[-1][2]
    assert replay.fd == -1
