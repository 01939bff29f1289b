"""Read what a (virtual) input device really delivers, from /dev/input/event*.

Plain os.read + struct over the kernel's evdev interface: no library between
the test and the kernel.  A reader must be open before the events are sent
(evdev queues events only for clients already listening).
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import time
from pathlib import Path

from rootstream._native.drm_ioctl import ioc

INPUT_EVENT = struct.Struct("llHHi")  # struct input_event on 64-bit Linux
ABSINFO = struct.Struct("6i")  # value, minimum, maximum, fuzz, flat, resolution
INPUT_ID = struct.Struct("4H")  # bustype, vendor, product, version
EV_SYN, EV_KEY, EV_REL, EV_ABS = 0x00, 0x01, 0x02, 0x03
KEY_AUTOREPEAT = 2  # an EV_KEY value: the key is still held


def event_node(name: str, timeout: float = 5.0) -> Path:
    """/dev/input/eventN of the input device called ``name``, once it exists."""
    deadline = time.monotonic() + timeout
    while True:
        for block in Path("/proc/bus/input/devices").read_text().split("\n\n"):
            if f'N: Name="{name}"' in block:
                handler = re.search(r"H: Handlers=.*?\b(event\d+)\b", block)
                if handler and (Path("/dev/input") / handler.group(1)).exists():
                    return Path("/dev/input") / handler.group(1)
        if time.monotonic() > deadline:
            raise AssertionError(f"no /dev/input/event* for an input device named {name!r}")
        time.sleep(0.02)


class EvdevReader:
    """One evdev client of the device called ``name``."""

    def __init__(self, name: str):
        self.path = event_node(name)
        self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self._pending = b""
        self._current: list[tuple[int, int, int]] = []
        self._ready: list[list[tuple[int, int, int]]] = []

    def frames(self, count: int, timeout: float = 5.0) -> list[list[tuple[int, int, int]]]:
        """The next ``count`` SYN_REPORT-terminated frames of (type, code, value).

        Auto-repeats of a held key are left out: under emulation a key may be
        held past the repeat delay, and a repeat is the kernel's doing.
        """
        deadline = time.monotonic() + timeout
        while len(self._ready) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.path}: {len(self._ready)} of {count} frames "
                                     f"within {timeout} s: {self._ready} + {self._current}")
            if select.select([self.fd], [], [], remaining)[0]:
                self._parse(os.read(self.fd, INPUT_EVENT.size * 64))
        frames, self._ready = self._ready[:count], self._ready[count:]
        return frames

    def _parse(self, data: bytes) -> None:
        self._pending += data
        while len(self._pending) >= INPUT_EVENT.size:
            _, _, kind, code, value = INPUT_EVENT.unpack_from(self._pending)
            self._pending = self._pending[INPUT_EVENT.size:]
            if kind == EV_SYN:
                if code == 0:  # SYN_REPORT ends a frame
                    self._ready.append(self._current)
                    self._current = []
            elif not (kind == EV_KEY and value == KEY_AUTOREPEAT):
                self._current.append((kind, code, value))

    def absinfo(self, axis: int) -> tuple[int, ...]:
        """EVIOCGABS: (value, min, max, fuzz, flat, resolution) of ``axis``."""
        data = fcntl.ioctl(self.fd, ioc(2, "E", 0x40 + axis, ABSINFO.size), bytes(ABSINFO.size))
        return ABSINFO.unpack(data)

    def device_id(self) -> tuple[int, int, int, int]:
        """EVIOCGID: (bustype, vendor, product, version)."""
        data = fcntl.ioctl(self.fd, ioc(2, "E", 0x02, INPUT_ID.size), bytes(INPUT_ID.size))
        return INPUT_ID.unpack(data)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
