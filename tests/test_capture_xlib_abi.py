"""The hand-written cffi declarations of rootstream._native.xlib against the real headers.

ABI mode trusts our declarations blindly, so a field out of place would read
garbage at run time.  Here gcc compiles Xlib.h, the extension headers (XShm,
Xdamage, Xrandr, Xfixes, XInput2) and sys/shm.h, and prints every size, field
offset and constant we declared; they must all match what cffi computed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rootstream._native import xlib
from rootstream._native.xlib import ffi

HEADERS = ["X11/Xlib.h", "X11/extensions/XShm.h", "X11/extensions/Xdamage.h",
           "X11/extensions/Xrandr.h", "X11/extensions/Xfixes.h", "X11/extensions/XInput2.h",
           "sys/shm.h"]
STRUCTS = ["XErrorEvent", "XEvent", "XRectangle", "XDamageNotifyEvent", "XImage",
           "XShmSegmentInfo", "XRRMonitorInfo", "XGenericEventCookie", "XFixesCursorImage",
           "XIEventMask"]
CONSTANTS = {
    "ZPIXMAP": "ZPixmap", "LSB_FIRST": "LSBFirst", "ALL_PLANES": "AllPlanes",
    "XDAMAGE_REPORT_BOUNDING_BOX": "XDamageReportBoundingBox",
    "XDAMAGE_NOTIFY": "XDamageNotify", "IPC_PRIVATE": "IPC_PRIVATE",
    "IPC_CREAT": "IPC_CREAT", "IPC_RMID": "IPC_RMID", "GENERIC_EVENT": "GenericEvent",
    "XFIXES_CURSOR_NOTIFY": "XFixesCursorNotify",
    "XFIXES_DISPLAY_CURSOR_NOTIFY_MASK": "XFixesDisplayCursorNotifyMask",
    "XI_ALL_MASTER_DEVICES": "XIAllMasterDevices", "XI_RAW_MOTION": "XI_RawMotion",
}


def ours() -> list[str]:
    lines = []
    for struct in STRUCTS:
        lines.append(f"sizeof {struct} {ffi.sizeof(struct)}")
        lines += [f"offsetof {struct}.{field} {ffi.offsetof(struct, field)}"
                  for field, _ in ffi.typeof(struct).fields]
    lines += [f"constant {name} {getattr(xlib, name)}" for name in CONSTANTS]
    return lines


def theirs(tmp_path: Path) -> list[str]:
    missing = [h for h in HEADERS
               if h.startswith("X11/") and not Path("/usr/include", h).exists()]
    if shutil.which("gcc") is None or missing:
        pytest.skip(f"gcc or X headers missing ({', '.join(missing) or 'gcc'}): "
                    "apt-get install gcc libx11-dev libxext-dev libxdamage-dev libxrandr-dev"
                    " libxfixes-dev libxi-dev")
    body = []
    for struct in STRUCTS:
        body.append(f'printf("sizeof {struct} %zu\\n", sizeof({struct}));')
        body += [f'printf("offsetof {struct}.{field} %zu\\n", offsetof({struct}, {field}));'
                 for field, _ in ffi.typeof(struct).fields]
    body += [f'printf("constant {ours} %lu\\n", (unsigned long)({theirs}));'
             for ours, theirs in CONSTANTS.items()]
    source = tmp_path / "layout.c"
    source.write_text("#include <stddef.h>\n#include <stdio.h>\n"
                      + "".join(f"#include <{h}>\n" for h in HEADERS)
                      + "int main(void) {\n" + "\n".join(body) + "\nreturn 0;\n}\n")
    binary = tmp_path / "layout"
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Werror", "-o", str(binary), str(source)],
                   check=True, timeout=60)
    return subprocess.run([str(binary)], check=True, capture_output=True, text=True,
                          timeout=10).stdout.splitlines()


def test_declarations_match_the_headers(tmp_path):
    assert ours() == theirs(tmp_path)
