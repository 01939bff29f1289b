"""rootstream.input.uinput_ff's struct layouts and ioctl numbers against <linux/uinput.h>.

A C program prints the size of every struct the module packs by hand, the
offset of every field it reads or writes, the request numbers and the event
constants, compiled against the system's kernel headers; the module's
``struct.Struct`` view must agree byte for byte.  A field the kernel renamed
fails to compile; a moved one is a different offset.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rootstream.input import uinput_ff as ff

HEADER = Path("/usr/include/linux/uinput.h")

# (C expression, what the module says)
EXPECTED = {
    "sizeof(struct input_event)": ff.INPUT_EVENT.size,
    "sizeof(struct uinput_setup)": ff.UINPUT_SETUP.size,
    "offsetof(struct uinput_setup, name)": 8,
    "offsetof(struct uinput_setup, ff_effects_max)": 88,
    "sizeof(struct uinput_abs_setup)": ff.UINPUT_ABS_SETUP.size,
    "offsetof(struct uinput_abs_setup, absinfo)": 4,
    "sizeof(struct ff_effect)": ff.FF_EFFECT.size,
    "offsetof(struct ff_effect, id)": 2,
    "offsetof(struct ff_effect, replay.length)": 10,
    "offsetof(struct ff_effect, u)": 16,
    "offsetof(struct ff_effect, u.rumble.strong_magnitude)": 16,
    "offsetof(struct ff_effect, u.rumble.weak_magnitude)": 18,
    "sizeof(struct uinput_ff_upload)": ff.UINPUT_FF_UPLOAD.size,
    "offsetof(struct uinput_ff_upload, retval)": 4,
    "offsetof(struct uinput_ff_upload, effect)": 8,
    "offsetof(struct uinput_ff_upload, old)": 8 + ff.FF_EFFECT.size,
    "sizeof(struct uinput_ff_erase)": ff.UINPUT_FF_ERASE.size,
    "offsetof(struct uinput_ff_erase, effect_id)": 8,
    "UI_DEV_CREATE": ff.UI_DEV_CREATE,
    "UI_DEV_DESTROY": ff.UI_DEV_DESTROY,
    "UI_DEV_SETUP": ff.UI_DEV_SETUP,
    "UI_ABS_SETUP": ff.UI_ABS_SETUP,
    "UI_SET_EVBIT": ff.UI_SET_EVBIT,
    "UI_SET_KEYBIT": ff.UI_SET_KEYBIT,
    "UI_SET_ABSBIT": ff.UI_SET_ABSBIT,
    "UI_SET_FFBIT": ff.UI_SET_FFBIT,
    "UI_BEGIN_FF_UPLOAD": ff.UI_BEGIN_FF_UPLOAD,
    "UI_END_FF_UPLOAD": ff.UI_END_FF_UPLOAD,
    "UI_BEGIN_FF_ERASE": ff.UI_BEGIN_FF_ERASE,
    "UI_END_FF_ERASE": ff.UI_END_FF_ERASE,
    "EV_FF": ff.EV_FF,
    "EV_UINPUT": ff.EV_UINPUT,
    "UI_FF_UPLOAD": ff.UI_FF_UPLOAD,
    "UI_FF_ERASE": ff.UI_FF_ERASE,
    "FF_RUMBLE": ff.FF_RUMBLE,
    "FF_GAIN": ff.FF_GAIN,
}


def test_struct_layouts_and_requests_match_the_kernel_header(tmp_path):
    if shutil.which("gcc") is None or not HEADER.exists():
        pytest.skip("gcc or linux/uinput.h (linux-libc-dev) is missing")
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/uinput.h>",
             "int main(void) {"]
    lines += [f'    printf("%lu\\n", (unsigned long)({expr}));' for expr in EXPECTED]
    lines += ["    return 0;", "}"]
    source = tmp_path / "abi.c"
    source.write_text("\n".join(lines) + "\n")
    binary = tmp_path / "abi"
    subprocess.run(["gcc", "-Wall", "-Werror", "-o", str(binary), str(source)], check=True)
    printed = subprocess.run([str(binary)], check=True, capture_output=True,
                             text=True).stdout.split()
    assert dict(zip(EXPECTED, map(int, printed), strict=True)) == EXPECTED
