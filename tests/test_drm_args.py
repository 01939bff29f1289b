"""The argument blocks rootstream hands each ioctl, byte for byte.

Each block is built twice: by rootstream's ``*_args`` functions, and by a C
program that fills the kernel's struct with the same inputs (designated
initialisers against the real headers) and prints its bytes.  The two must
be identical, so the kernel receives exactly what C code would send.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from rootstream._native import drm_device as d
from rootstream._native.drm_abi import (
    DMA_BUF_SYNC_READ,
    DMA_BUF_SYNC_START,
    DRM_CAP_PRIME,
    DRM_CLIENT_CAP_UNIVERSAL_PLANES,
    DRM_FORMAT_XRGB8888,
    DRM_MODE_OBJECT_PLANE,
    DRM_MODE_PAGE_FLIP_EVENT,
    ffi,
)
from rootstream._native.drm_parse import parse_connector

MODE_RAW = parse_connector(
    (Path(__file__).parent / "data" / "drm" / "card-hdmi" / "connector-95.bin").read_bytes()
).modes[0].raw

# name -> (python-built block, C struct type, C initialiser)
CASES = {
    "get_cap": (d.get_cap_args(DRM_CAP_PRIME), "drm_get_cap",
                "{.capability = DRM_CAP_PRIME}"),
    "set_client_cap": (d.set_client_cap_args(DRM_CLIENT_CAP_UNIVERSAL_PLANES, 1),
                       "drm_set_client_cap",
                       "{.capability = DRM_CLIENT_CAP_UNIVERSAL_PLANES, .value = 1}"),
    "gem_close": (d.gem_close_args(7), "drm_gem_close", "{.handle = 7}"),
    "prime_handle_to_fd": (d.prime_handle_to_fd_args(7), "drm_prime_handle",
                           "{.handle = 7, .flags = DRM_CLOEXEC, .fd = -1}"),
    "getfb2": (d.getfb2_args(84), "drm_mode_fb_cmd2", "{.fb_id = 84}"),
    "create_dumb": (d.create_dumb_args(1920, 1080, 32), "drm_mode_create_dumb",
                    "{.width = 1920, .height = 1080, .bpp = 32}"),
    "map_dumb": (d.map_dumb_args(5), "drm_mode_map_dumb", "{.handle = 5}"),
    "destroy_dumb": (d.destroy_dumb_args(5), "drm_mode_destroy_dumb", "{.handle = 5}"),
    "addfb2": (d.addfb2_args(1920, 1080, DRM_FORMAT_XRGB8888, 5, 7680), "drm_mode_fb_cmd2",
               "{.width = 1920, .height = 1080, .pixel_format = DRM_FORMAT_XRGB8888, "
               ".handles = {5}, .pitches = {7680}}"),
    "page_flip": (d.page_flip_args(51, 84, DRM_MODE_PAGE_FLIP_EVENT, 0xDEADBEEF01),
                  "drm_mode_crtc_page_flip",
                  "{.crtc_id = 51, .fb_id = 84, .flags = DRM_MODE_PAGE_FLIP_EVENT, "
                  ".user_data = 0xDEADBEEF01ull}"),
    "obj_get_properties": (d.obj_get_properties_args(31, DRM_MODE_OBJECT_PLANE),
                           "drm_mode_obj_get_properties",
                           "{.obj_id = 31, .obj_type = DRM_MODE_OBJECT_PLANE}"),
    "dma_buf_sync": (d.dma_buf_sync_args(DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ),
                     "dma_buf_sync", "{.flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ}"),
}


@pytest.fixture(scope="module")
def c_blocks(tmp_path_factory) -> dict[str, bytes]:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: cannot build the reference argument blocks")
    if not Path("/usr/include/libdrm/drm_mode.h").exists():
        pytest.skip("libdrm headers missing: apt-get install libdrm-dev")
    lines = [
        "#include <stdio.h>", "#include <string.h>", "#include <fcntl.h>",
        "#include <drm.h>", "#include <drm_mode.h>", "#include <drm_fourcc.h>",
        "#include <linux/dma-buf.h>",
        "static void dump(const char *name, const void *p, size_t n) {",
        "  const unsigned char *b = p; printf(\"%s \", name);",
        "  for (size_t i = 0; i < n; i++) { printf(\"%02x\", b[i]); }",
        "  printf(\"\\n\"); }",
        "int main(void) {",
    ]
    for name, (_, ctype, init) in CASES.items():
        # memset first so padding bytes are zero, as ffi.new leaves them.
        lines += [
            "{",
            f"  struct {ctype} v; memset(&v, 0, sizeof(v));",
            f"  struct {ctype} init = {init}; memcpy(&v, &init, sizeof(v));",
            f'  dump("{name}", &v, sizeof(v));',
            "}",
        ]
    lines += ["return 0; }"]
    work = tmp_path_factory.mktemp("drm_args")
    (work / "args.c").write_text("\n".join(lines) + "\n")
    subprocess.run(["gcc", "-std=gnu11", "-Wall", "-Werror", "-I/usr/include/libdrm", "-o",
                    str(work / "args"), str(work / "args.c")],
                   check=True, capture_output=True, timeout=120)
    out = subprocess.run([str(work / "args")], check=True, capture_output=True, text=True,
                         timeout=30).stdout
    return {name: bytes.fromhex(hexed) for name, hexed in
            (line.split() for line in out.splitlines())}


@pytest.mark.parametrize("name", sorted(CASES))
def test_block_matches_c(c_blocks, name):
    assert bytes(ffi.buffer(CASES[name][0])) == c_blocks[name]


def test_create_dumb_block_by_hand():
    # height, width, bpp, flags, handle, pitch, size: the kernel's order, not ours.
    expected = struct.pack("=IIIIIIQ", 1080, 1920, 32, 0, 0, 0, 0)
    assert bytes(ffi.buffer(d.create_dumb_args(1920, 1080))) == expected


def test_prime_export_is_close_on_exec_and_read_only():
    block = bytes(ffi.buffer(d.prime_handle_to_fd_args(9)))
    assert struct.unpack("=IIi", block) == (9, os.O_CLOEXEC, -1)


def test_setcrtc_block_points_at_its_connector_array():
    args, connectors = d.setcrtc_args(51, 84, 0, 0, [95], MODE_RAW)
    block = bytes(ffi.buffer(args))
    ptr, count, crtc_id, fb_id, x, y, gamma, valid = struct.unpack_from("=QIIIIIII", block)
    assert ptr == int(ffi.cast("uintptr_t", connectors)) and list(connectors) == [95]
    assert (count, crtc_id, fb_id, x, y, gamma, valid) == (1, 51, 84, 0, 0, 0, 1)
    assert block[ffi.offsetof("struct drm_mode_crtc", "mode"):] == MODE_RAW


def test_setcrtc_disable_block():
    args, connectors = d.setcrtc_args(72, 0, 0, 0, [], None)
    assert connectors is None
    block = bytes(ffi.buffer(args))
    assert struct.unpack_from("=QIIIIIII", block) == (0, 0, 72, 0, 0, 0, 0, 0)
    assert block[ffi.offsetof("struct drm_mode_crtc", "mode"):] == bytes(68)


def test_setcrtc_refuses_a_wrong_sized_mode():
    with pytest.raises(ValueError, match="drm_mode_modeinfo"):
        d.setcrtc_args(51, 84, 0, 0, [95], MODE_RAW[:-1])


def test_rmfb_block_is_the_bare_fb_id():
    assert bytes(ffi.buffer(d.rmfb_args(84))) == struct.pack("=I", 84)
