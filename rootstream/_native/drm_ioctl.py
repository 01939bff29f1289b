"""ioctl request numbers for DRM/KMS and dma-buf, computed like <asm/ioctl.h>.

A request number packs direction, argument size, a type letter and a
command number.  Computing it here from the cffi struct sizes (instead of
copying hex constants) means a wrong struct declaration shows up as a wrong
request number too; tests/test_drm_abi.py checks every number against the
DRM_IOCTL_* macros compiled from the real headers.
"""

from __future__ import annotations

import platform

from rootstream._native.drm_abi import ffi

# asm-generic/ioctl.h: 8 bits nr, 8 bits type, 14 bits size, 2 bits dir.
# powerpc, mips, sparc and alpha use 13 size bits and 3 dir bits with other
# direction values; their layout is kept so the module is right there too.
_ALT_ARCHES = ("ppc", "powerpc", "mips", "sparc", "alpha")
if platform.machine().lower().startswith(_ALT_ARCHES):
    _SIZEBITS, _NONE, _WRITE, _READ = 13, 1, 4, 2
else:
    _SIZEBITS, _NONE, _WRITE, _READ = 14, 0, 1, 2
_NRSHIFT, _TYPESHIFT, _SIZESHIFT = 0, 8, 16
_DIRSHIFT = _SIZESHIFT + _SIZEBITS


def ioc(direction: int, kind: str, nr: int, size: int) -> int:
    """_IOC(dir, type, nr, size)."""
    if not 0 <= size < (1 << _SIZEBITS):
        raise ValueError(f"ioctl argument size {size} does not fit in {_SIZEBITS} bits")
    return (
        (direction << _DIRSHIFT)
        | (size << _SIZESHIFT)
        | (ord(kind) << _TYPESHIFT)
        | (nr << _NRSHIFT)
    )


def iow(kind: str, nr: int, ctype: str) -> int:
    return ioc(_WRITE, kind, nr, ffi.sizeof(ctype))


def iowr(kind: str, nr: int, ctype: str) -> int:
    return ioc(_READ | _WRITE, kind, nr, ffi.sizeof(ctype))


DRM_IOCTL_BASE = "d"
DRM_COMMAND_BASE = 0x40  # driver-private ioctls start here; the core ones below
DMA_BUF_BASE = "b"

DRM_IOCTL_VERSION = iowr(DRM_IOCTL_BASE, 0x00, "struct drm_version")
DRM_IOCTL_GEM_CLOSE = iow(DRM_IOCTL_BASE, 0x09, "struct drm_gem_close")
DRM_IOCTL_GET_CAP = iowr(DRM_IOCTL_BASE, 0x0C, "struct drm_get_cap")
DRM_IOCTL_SET_CLIENT_CAP = iow(DRM_IOCTL_BASE, 0x0D, "struct drm_set_client_cap")
DRM_IOCTL_PRIME_HANDLE_TO_FD = iowr(DRM_IOCTL_BASE, 0x2D, "struct drm_prime_handle")
# The argument is union drm_wait_vblank, whose size is its larger member's.
DRM_IOCTL_WAIT_VBLANK = iowr(DRM_IOCTL_BASE, 0x3A, "struct drm_wait_vblank_reply")
DRM_IOCTL_MODE_GETRESOURCES = iowr(DRM_IOCTL_BASE, 0xA0, "struct drm_mode_card_res")
DRM_IOCTL_MODE_GETCRTC = iowr(DRM_IOCTL_BASE, 0xA1, "struct drm_mode_crtc")
DRM_IOCTL_MODE_SETCRTC = iowr(DRM_IOCTL_BASE, 0xA2, "struct drm_mode_crtc")
DRM_IOCTL_MODE_GETENCODER = iowr(DRM_IOCTL_BASE, 0xA6, "struct drm_mode_get_encoder")
DRM_IOCTL_MODE_GETCONNECTOR = iowr(DRM_IOCTL_BASE, 0xA7, "struct drm_mode_get_connector")
DRM_IOCTL_MODE_GETPROPERTY = iowr(DRM_IOCTL_BASE, 0xAA, "struct drm_mode_get_property")
DRM_IOCTL_MODE_GETPROPBLOB = iowr(DRM_IOCTL_BASE, 0xAC, "struct drm_mode_get_blob")
DRM_IOCTL_MODE_RMFB = iowr(DRM_IOCTL_BASE, 0xAF, "unsigned int")
DRM_IOCTL_MODE_PAGE_FLIP = iowr(DRM_IOCTL_BASE, 0xB0, "struct drm_mode_crtc_page_flip")
DRM_IOCTL_MODE_CREATE_DUMB = iowr(DRM_IOCTL_BASE, 0xB2, "struct drm_mode_create_dumb")
DRM_IOCTL_MODE_MAP_DUMB = iowr(DRM_IOCTL_BASE, 0xB3, "struct drm_mode_map_dumb")
DRM_IOCTL_MODE_DESTROY_DUMB = iowr(DRM_IOCTL_BASE, 0xB4, "struct drm_mode_destroy_dumb")
DRM_IOCTL_MODE_GETPLANERESOURCES = iowr(DRM_IOCTL_BASE, 0xB5, "struct drm_mode_get_plane_res")
DRM_IOCTL_MODE_GETPLANE = iowr(DRM_IOCTL_BASE, 0xB6, "struct drm_mode_get_plane")
DRM_IOCTL_MODE_ADDFB2 = iowr(DRM_IOCTL_BASE, 0xB8, "struct drm_mode_fb_cmd2")
DRM_IOCTL_MODE_OBJ_GETPROPERTIES = iowr(
    DRM_IOCTL_BASE, 0xB9, "struct drm_mode_obj_get_properties"
)
DRM_IOCTL_MODE_GETFB2 = iowr(DRM_IOCTL_BASE, 0xCE, "struct drm_mode_fb_cmd2")

DMA_BUF_IOCTL_SYNC = iow(DMA_BUF_BASE, 0, "struct dma_buf_sync")

# name -> number, for the ABI test and for error messages.
REQUESTS = {
    name: value
    for name, value in dict(globals()).items()
    if name.startswith(("DRM_IOCTL_", "DMA_BUF_IOCTL_")) and name != "DRM_IOCTL_BASE"
}
REQUEST_NAMES = {value: name for name, value in REQUESTS.items()}
