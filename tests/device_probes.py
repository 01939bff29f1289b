"""Which devices this machine has, for the per-device test markers.

A test marked ``kms``, ``uinput``, ``vaapi``, ``nvenc`` or ``nvdec`` is skipped
only when its device is absent (the probe's reason is the skip's reason) and
runs, so fails when the code is wrong, when the device is there.  On a
machine without them, tests/test_vm_kernel.py boots a VM where ``kms`` (vkms)
and ``uinput`` are present and runs those tests inside.
"""

from __future__ import annotations

import ctypes
import glob
import os
import stat

VM_NOTE = "tests/test_vm_kernel.py runs it in a VM with vkms and uinput"


def _char_device(path: str) -> bool:
    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except OSError:
        return False


def _libcuda() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def probe_kms() -> str | None:
    if any(_char_device(p) for p in glob.glob("/dev/dri/card*")):
        return None
    return f"no KMS device (/dev/dri/card*); {VM_NOTE}"


def probe_uinput() -> str | None:
    if _char_device("/dev/uinput"):
        return None
    return f"no /dev/uinput (modprobe uinput); {VM_NOTE}"


def probe_vaapi() -> str | None:
    if any(_char_device(p) for p in glob.glob("/dev/dri/renderD*")):
        return None
    return "no VA-API GPU (/dev/dri/renderD*)"


def probe_nvidia() -> str | None:
    if _char_device("/dev/nvidiactl") and _libcuda():
        return None
    return "no NVIDIA GPU with its driver (/dev/nvidiactl and libcuda.so.1)"


# marker name -> probe: None when the device is there, else why not.
PROBES = {
    "kms": probe_kms,
    "uinput": probe_uinput,
    "vaapi": probe_vaapi,
    "nvenc": probe_nvidia,
    "nvdec": probe_nvidia,
}


def missing_devices() -> dict[str, str]:
    """{marker: reason} for each device this machine lacks."""
    found = {name: probe() for name, probe in PROBES.items()}
    return {name: reason for name, reason in found.items() if reason is not None}
