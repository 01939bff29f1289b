"""The hand-written cffi DRM structs and ioctl numbers against the real UAPI headers.

A C program is generated from the cffi declarations (every struct, every
field, every request number), compiled with gcc against Debian's libdrm-dev
headers and linux/dma-buf.h, and its output compared with cffi's view.  A
field name the kernel does not have fails to compile; a wrong type or a
missing field shows up as a different offset, size or request number.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rootstream._native import drm_abi, drm_ioctl
from rootstream._native.drm_abi import ffi

HEADERS = (
    Path("/usr/include/libdrm/drm.h"),
    Path("/usr/include/libdrm/drm_mode.h"),
    Path("/usr/include/libdrm/drm_fourcc.h"),
    Path("/usr/include/linux/dma-buf.h"),
)


def _need_toolchain() -> None:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: cannot compile the kernel UAPI headers")
    missing = [str(h) for h in HEADERS if not h.exists()]
    if missing:
        pytest.skip(f"UAPI headers missing ({', '.join(missing)}): apt-get install libdrm-dev")


def _struct_fields(name: str) -> list[tuple[str, object]]:
    return list(ffi.typeof(f"struct {name}").fields)


def _c_program() -> str:
    lines = [
        "#include <stdio.h>",
        "#include <stddef.h>",
        "#include <drm.h>",
        "#include <drm_mode.h>",
        "#include <drm_fourcc.h>",
        "#include <linux/dma-buf.h>",
        "int main(void) {",
    ]
    for struct in drm_abi.STRUCTS:
        lines.append(f'printf("size {struct} %zu\\n", sizeof(struct {struct}));')
        for field, _ in _struct_fields(struct):
            lines.append(
                f'printf("field {struct}.{field} %zu %zu\\n", '
                f"offsetof(struct {struct}, {field}), "
                f"sizeof(((struct {struct} *)0)->{field}));"
            )
    for name in drm_ioctl.REQUESTS:
        lines.append(f'printf("ioctl {name} %lu\\n", (unsigned long)({name}));')
    constants = [name for name in dir(drm_abi) if name.startswith(("DRM_", "DMA_BUF_"))]
    for name in constants:
        # drm.h spells the vblank request flags with a leading underscore.
        c_name = f"_{name}" if name.startswith("DRM_VBLANK_") else name
        lines.append(f'printf("const {name} %llu\\n", (unsigned long long)({c_name}));')
    lines.append('printf("const DRM_COMMAND_BASE %d\\n", DRM_COMMAND_BASE);')
    lines.append("return 0; }")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, dict]:
    _need_toolchain()
    work = tmp_path_factory.mktemp("drm_abi")
    source = work / "abi.c"
    source.write_text(_c_program())
    binary = work / "abi"
    result = subprocess.run(
        ["gcc", "-std=c11", "-Wall", "-Werror", "-I/usr/include/libdrm", "-o", str(binary),
         str(source)],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = subprocess.run([str(binary)], capture_output=True, text=True, check=True, timeout=30)
    table: dict[str, dict] = {"size": {}, "field": {}, "ioctl": {}, "const": {}}
    for line in out.stdout.splitlines():
        kind, name, *values = line.split()
        table[kind][name] = tuple(int(v) for v in values) if kind == "field" else int(values[0])
    return table


@pytest.mark.parametrize("struct", drm_abi.STRUCTS)
def test_struct_size_matches_kernel(compiled, struct):
    assert ffi.sizeof(f"struct {struct}") == compiled["size"][struct]


@pytest.mark.parametrize("struct", drm_abi.STRUCTS)
def test_every_field_offset_and_size_matches_kernel(compiled, struct):
    for field, info in _struct_fields(struct):
        expected = compiled["field"][f"{struct}.{field}"]
        assert (info.offset, ffi.sizeof(info.type)) == expected, f"{struct}.{field}"


@pytest.mark.parametrize("name", sorted(drm_ioctl.REQUESTS))
def test_ioctl_number_matches_kernel(compiled, name):
    assert drm_ioctl.REQUESTS[name] == compiled["ioctl"][name], hex(drm_ioctl.REQUESTS[name])


def test_constants_match_kernel(compiled):
    for name, value in compiled["const"].items():
        if name == "DRM_COMMAND_BASE":
            assert drm_ioctl.DRM_COMMAND_BASE == value
        else:
            assert getattr(drm_abi, name) == value, name


def test_ioctl_numbers_known_values():
    # Pinned independently of any compiler: x86-64 values of the two ioctls
    # every capture makes, read from a running system's strace.
    assert drm_ioctl.DRM_IOCTL_MODE_GETRESOURCES == 0xC04064A0
    assert drm_ioctl.DRM_IOCTL_MODE_GETFB2 == 0xC06864CE
    assert drm_ioctl.DMA_BUF_IOCTL_SYNC == 0x40086200


def test_ioc_rejects_oversized_argument():
    with pytest.raises(ValueError, match="does not fit"):
        drm_ioctl.ioc(3, "d", 0, 1 << 14)


def test_connector_names_cover_every_header_type():
    header = Path("/usr/include/libdrm/drm_mode.h")
    if not header.exists():
        pytest.skip("drm_mode.h missing: apt-get install libdrm-dev")
    count = sum(
        1 for line in header.read_text().splitlines()
        if line.startswith("#define DRM_MODE_CONNECTOR_") and line.split()[2].isdigit()
    )
    assert len(drm_abi.CONNECTOR_TYPE_NAMES) >= count
