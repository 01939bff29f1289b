"""A uinput gamepad that accepts force feedback, on the raw /dev/uinput fd.

python-uinput cannot make such a device: the kernel refuses EV_FF unless
``ff_effects_max`` is set at creation, and python-uinput neither sets it nor
answers the upload requests.  So the gamepad is built here with the uinput
ioctls directly (UI_DEV_SETUP, UI_ABS_SETUP, UI_SET_*BIT, UI_DEV_CREATE) and
offers python-uinput's small Device interface (``emit``/``syn``/``destroy``),
so the injector writes to it exactly as to its other devices.

Force feedback through uinput (<linux/uinput.h>): a game's EVIOCSFF on the
pad's event node blocks in the kernel until this process answers.  The kernel
queues an EV_UINPUT event (code UI_FF_UPLOAD, value a request id) on this fd;
we fetch the effect with UI_BEGIN_FF_UPLOAD, store it, and report success with
UI_END_FF_UPLOAD; an erase is the same with UI_*_FF_ERASE.  Playing, stopping
and the gain arrive as plain EV_FF events on this fd (code = effect id, value =
replay count, 0 stops; code FF_GAIN, value = gain).  ``read_requests`` does
that handshake and returns what the game asked for, as ``FfRequest``s.

Struct layouts (x86-64 and every LP64 Linux; pinned against the compiled
header by tests/test_uinput_ff_abi.py):

    struct input_event      24  timeval (2 longs), type u16, code u16, value s32
    struct uinput_setup     92  input_id (4 u16), name char[80], ff_effects_max u32
    struct uinput_abs_setup 28  code u16, 2 pad, input_absinfo (6 s32)
    struct ff_effect        48  type u16, id s16, direction u16, trigger (button u16,
                                interval u16), replay (length u16, delay u16), 2 pad,
                                union u (32 bytes, 8-aligned: it holds a pointer);
                                u.rumble = strong_magnitude u16, weak_magnitude u16
    struct uinput_ff_upload 104 request_id u32, retval s32, effect, old (ff_effect each)
    struct uinput_ff_erase  12  request_id u32, retval s32, effect_id u32
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from dataclasses import dataclass

from rootstream._native.drm_ioctl import ioc

INPUT_EVENT = struct.Struct("llHHi")
UINPUT_SETUP = struct.Struct("4H80sI")
UINPUT_ABS_SETUP = struct.Struct("H2x6i")
FF_EFFECT = struct.Struct("HhHHHHH2x32s")
FF_RUMBLE_BODY = struct.Struct("HH")  # the start of ff_effect.u
UINPUT_FF_UPLOAD = struct.Struct(f"Ii{FF_EFFECT.size}s{FF_EFFECT.size}s")
UINPUT_FF_ERASE = struct.Struct("IiI")
assert (INPUT_EVENT.size, UINPUT_SETUP.size, UINPUT_ABS_SETUP.size) == (24, 92, 28)
assert (FF_EFFECT.size, UINPUT_FF_UPLOAD.size, UINPUT_FF_ERASE.size) == (48, 104, 12)

# <asm-generic/ioctl.h> directions, as rootstream._native.drm_ioctl packs them.
_NONE, _WRITE, _READ = 0, 1, 2
UI_DEV_CREATE = ioc(_NONE, "U", 1, 0)
UI_DEV_DESTROY = ioc(_NONE, "U", 2, 0)
UI_DEV_SETUP = ioc(_WRITE, "U", 3, UINPUT_SETUP.size)
UI_ABS_SETUP = ioc(_WRITE, "U", 4, UINPUT_ABS_SETUP.size)
UI_SET_EVBIT = ioc(_WRITE, "U", 100, 4)
UI_SET_KEYBIT = ioc(_WRITE, "U", 101, 4)
UI_SET_ABSBIT = ioc(_WRITE, "U", 103, 4)
UI_SET_FFBIT = ioc(_WRITE, "U", 107, 4)
UI_BEGIN_FF_UPLOAD = ioc(_READ | _WRITE, "U", 200, UINPUT_FF_UPLOAD.size)
UI_END_FF_UPLOAD = ioc(_WRITE, "U", 201, UINPUT_FF_UPLOAD.size)
UI_BEGIN_FF_ERASE = ioc(_READ | _WRITE, "U", 202, UINPUT_FF_ERASE.size)
UI_END_FF_ERASE = ioc(_WRITE, "U", 203, UINPUT_FF_ERASE.size)

EV_SYN, EV_KEY, EV_ABS, EV_FF = 0x00, 0x01, 0x03, 0x15
EV_UINPUT, UI_FF_UPLOAD, UI_FF_ERASE = 0x0101, 1, 2
FF_RUMBLE, FF_GAIN = 0x50, 0x60
FF_EFFECTS_MAX = 16  # effects a game may hold on one pad at once (SDL uses one)


@dataclass(frozen=True, slots=True)
class FfRequest:
    """What a game asked of one pad.

    ``action``: "upload" (``effect_id``, ``strong``, ``weak``, ``length_ms``),
    "erase" (``effect_id``), "play" (``effect_id``, ``count``: replays; 0 stops)
    or "gain" (``count``: 0..0xFFFF).
    """

    action: str
    effect_id: int = 0
    strong: int = 0
    weak: int = 0
    length_ms: int = 0
    count: int = 0


def _ioctl(fd: int, request: int, arg) -> bytes | int:
    return fcntl.ioctl(fd, request, arg)


class FfGamepad:
    """A uinput device with FF_RUMBLE and FF_GAIN; python-uinput's Device interface.

    ``events`` are python-uinput capability tuples: (type, code) or, for an
    axis, (type, code, min, max, fuzz, flat).  ``fd`` is /dev/uinput opened
    read-write and non-blocking (the upload requests are read from it).
    """

    def __init__(self, events, name: str, fd: int, bustype: int = 0, vendor: int = 0,
                 product: int = 0, version: int = 0) -> None:
        self.fd = fd
        self.name = name
        for ev_type in (EV_KEY, EV_ABS, EV_FF):
            _ioctl(fd, UI_SET_EVBIT, ev_type)
        for spec in events:
            ev_type, code = spec[:2]
            if ev_type == EV_KEY:
                _ioctl(fd, UI_SET_KEYBIT, code)
            elif ev_type == EV_ABS:
                _ioctl(fd, UI_SET_ABSBIT, code)
                minimum, maximum, fuzz, flat = spec[2:] if len(spec) > 2 else (0, 0, 0, 0)
                _ioctl(fd, UI_ABS_SETUP, UINPUT_ABS_SETUP.pack(code, 0, minimum, maximum,
                                                               fuzz, flat, 0))
        for effect in (FF_RUMBLE, FF_GAIN):
            _ioctl(fd, UI_SET_FFBIT, effect)
        _ioctl(fd, UI_DEV_SETUP, UINPUT_SETUP.pack(bustype, vendor, product, version,
                                                   name.encode()[:79], FF_EFFECTS_MAX))
        _ioctl(fd, UI_DEV_CREATE, 0)
        self._pending = b""

    # -- python-uinput's Device interface ---------------------------------------

    def emit(self, event, value: int, syn: bool = True) -> None:
        os.write(self.fd, INPUT_EVENT.pack(0, 0, event[0], event[1], value))
        if syn:
            self.syn()

    def syn(self) -> None:
        os.write(self.fd, INPUT_EVENT.pack(0, 0, EV_SYN, 0, 0))

    def destroy(self) -> None:
        if self.fd < 0:
            return
        fd, self.fd = self.fd, -1
        try:
            _ioctl(fd, UI_DEV_DESTROY, 0)
        finally:
            os.close(fd)

    # -- force feedback ---------------------------------------------------------

    def read_requests(self) -> list[FfRequest]:
        """Answer every pending upload/erase and return what the game asked for.

        Never blocks (the fd is non-blocking).  Uploads of anything but a
        rumble effect cannot arrive: the kernel checks the type against the
        FF bits set above before it asks us.
        """
        requests: list[FfRequest] = []
        while self.fd >= 0:
            try:
                data = os.read(self.fd, INPUT_EVENT.size * 16)
            except BlockingIOError:
                break
            if not data:
                break
            self._pending += data
            while len(self._pending) >= INPUT_EVENT.size:
                _, _, kind, code, value = INPUT_EVENT.unpack_from(self._pending)
                self._pending = self._pending[INPUT_EVENT.size:]
                request = self._one(kind, code, value)
                if request is not None:
                    requests.append(request)
        return requests

    def _one(self, kind: int, code: int, value: int) -> FfRequest | None:
        if kind == EV_UINPUT and code == UI_FF_UPLOAD:
            return self._upload(value)
        if kind == EV_UINPUT and code == UI_FF_ERASE:
            raw = _ioctl(self.fd, UI_BEGIN_FF_ERASE, UINPUT_FF_ERASE.pack(value, 0, 0))
            request_id, _, effect_id = UINPUT_FF_ERASE.unpack(raw)
            _ioctl(self.fd, UI_END_FF_ERASE, UINPUT_FF_ERASE.pack(request_id, 0, effect_id))
            return FfRequest("erase", effect_id)
        if kind == EV_FF and code == FF_GAIN:
            return FfRequest("gain", count=value)
        if kind == EV_FF:
            return FfRequest("play", code, count=value)
        return None  # EV_SYN and anything else the kernel echoes

    def _upload(self, request_id: int) -> FfRequest | None:
        empty = bytes(FF_EFFECT.size)
        raw = _ioctl(self.fd, UI_BEGIN_FF_UPLOAD,
                     UINPUT_FF_UPLOAD.pack(request_id, 0, empty, empty))
        request_id, _, effect, _ = UINPUT_FF_UPLOAD.unpack(raw)
        ff_type, effect_id, _, _, _, length, _, body = FF_EFFECT.unpack(effect)
        ok = ff_type == FF_RUMBLE
        retval = 0 if ok else -errno.EINVAL
        _ioctl(self.fd, UI_END_FF_UPLOAD, UINPUT_FF_UPLOAD.pack(request_id, retval, effect,
                                                                empty))
        if not ok:
            return None
        strong, weak = FF_RUMBLE_BODY.unpack_from(body)
        return FfRequest("upload", effect_id, strong, weak, length)
