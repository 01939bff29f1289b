"""Pointer capture for the x11 presenter's window: a grab, a hidden cursor, relative motion.

What SDL's relative mouse mode does for its window (Ctrl+Alt+Shift+Z), done
on the X11 input reader's own connection and thread, so the deltas leave as
soon as the server sends them:

- ``XGrabPointer`` confined to the window, with an invisible cursor: the
  pointer cannot leave the picture, and every click and motion goes to the
  grabbing connection (the reader's) alone.
- Relative motion from XInput2 raw events (``XI_RawMotion`` on the root
  window, selected only while grabbed): the device's own deltas, before
  the server's acceleration and before the pointer stops at the window's
  edge, as a game expects.  A device whose axes are absolute (a tablet,
  XTEST's absolute moves, a VM's tablet pointer) reports positions: those
  become the difference from its last position, scaled from the axis
  range to the screen.
- Without XInput2 (or ``use_raw=False``): warp-to-centre.  Each motion's
  distance from the window's centre is the delta, and the pointer is
  warped back; the motion that the warp itself causes lands on the centre
  and carries no delta.

The keyboard is not grabbed: keys already reach the reader while the window
has the focus, and the desktop's own shortcuts (Alt+Tab) stay a way out.
A focus loss, the hotkey again, and closing all release the grab
(rootstream.input.x11_reader decides when).
"""

from __future__ import annotations

from cffi import FFI

_ffi = FFI()
_ffi.cdef("""
typedef unsigned long XID;
typedef struct { unsigned long pixel; unsigned short red, green, blue; char flags, pad; } XColor;
int XGrabPointer(void *dpy, XID window, int owner_events, unsigned int event_mask,
                 int pointer_mode, int keyboard_mode, XID confine_to, XID cursor,
                 unsigned long time);
int XUngrabPointer(void *dpy, unsigned long time);
int XWarpPointer(void *dpy, XID src, XID dest, int src_x, int src_y, unsigned int src_w,
                 unsigned int src_h, int dest_x, int dest_y);
XID XCreateBitmapFromData(void *dpy, XID drawable, const char *data, unsigned int w,
                          unsigned int h);
int XFreePixmap(void *dpy, XID pixmap);
XID XCreatePixmapCursor(void *dpy, XID source, XID mask, XColor *fg, XColor *bg,
                        unsigned int x, unsigned int y);
int XFreeCursor(void *dpy, XID cursor);
int XFlush(void *dpy);

/* XInput2 (XInput2.h), up to the fields read here; tests/test_input_x11_pointer_capture.py
   compiles the header and compares the offsets. */
typedef struct { int mask_len; unsigned char *mask; double *values; } XIValuatorState;
typedef struct { int type; unsigned long serial; int send_event; void *display;
                 int extension; int evtype; unsigned long time;
                 int deviceid, sourceid, detail, flags;
                 XIValuatorState valuators; double *raw_values; } XIRawEvent;
typedef struct { int type; int sourceid; } XIAnyClassInfo;
typedef struct { int type; int sourceid; int number; unsigned long label;
                 double min, max, value; int resolution; int mode; } XIValuatorClassInfo;
typedef struct { int deviceid; char *name; int use; int attachment; int enabled;
                 int num_classes; XIAnyClassInfo **classes; } XIDeviceInfo;
typedef struct { int deviceid; int mask_len; unsigned char *mask; } XIEventMask;
XIDeviceInfo *XIQueryDevice(void *dpy, int deviceid, int *ndevices);
void XIFreeDeviceInfo(XIDeviceInfo *info);
int XISelectEvents(void *dpy, XID window, XIEventMask *masks, int num_masks);
""")

XI_RAW_MOTION = 17
_XI_VALUATOR_CLASS, _XI_MODE_RELATIVE, _XI_ALL_DEVICES = 2, 0, 0
_GRAB_MODE_ASYNC = 1
# ButtonPress, ButtonRelease, PointerMotion: what the grab reports to us.
_GRAB_EVENTS = (1 << 2) | (1 << 3) | (1 << 6)
_GRAB_FAILURES = {1: "another program holds the pointer", 2: "the grab came too late",
                  3: "the window is not visible", 4: "the pointer is frozen by another grab"}

_libs: tuple | None = None


def _open():
    global _libs
    if _libs is None:
        _libs = (_ffi.dlopen("libX11.so.6"), _ffi.dlopen("libXi.so.6"))
    return _libs


def _void(pointer):
    """A pointer from rootstream._native.xlib's FFI, as this module's ``void *``."""
    return _ffi.cast("void *", _address(pointer))


def _address(pointer) -> int:
    from rootstream._native.xlib import ffi

    return int(ffi.cast("uintptr_t", pointer))


class _Axes:
    """One source device's x and y: relative (deltas) or absolute (positions + scale)."""

    def __init__(self, relative: bool, scale: tuple[float, float] = (1.0, 1.0)):
        self.relative = relative
        self.scale = scale
        self.last: list[float | None] = [None, None]


class PointerGrab:
    """The grab on ``window`` of ``display`` (the reader's connection and thread only).

    ``grab()`` returns "" or why not; ``release()`` is safe twice.  While
    grabbed, ``raw(cookie_data)`` and ``motion(x, y)`` turn what the reader
    reads into (dx, dy) in screen pixels, or None.
    """

    def __init__(self, display, window: int, root: int, window_size: tuple[int, int],
                 screen_size: tuple[int, int], *, use_raw: bool):
        self._display = _void(display)
        self._window = window
        self._root = root
        self.window_size = window_size
        self._screen = screen_size
        self.uses_raw = use_raw
        self.grabbed = False
        self._devices: dict[int, _Axes] = {}
        self._rest = [0.0, 0.0]  # sub-pixel deltas carried to the next event

    def grab(self) -> str:
        if self.grabbed:
            return ""
        x11, _ = _open()
        cursor = self._invisible_cursor(x11)
        status = x11.XGrabPointer(self._display, self._window, False, _GRAB_EVENTS,
                                  _GRAB_MODE_ASYNC, _GRAB_MODE_ASYNC, self._window, cursor, 0)
        x11.XFreeCursor(self._display, cursor)  # the grab keeps its own reference
        if status != 0:
            x11.XFlush(self._display)
            return _GRAB_FAILURES.get(status, f"XGrabPointer answered {status}")
        self.grabbed = True
        self._devices.clear()
        self._rest = [0.0, 0.0]
        if self.uses_raw:
            self._select_raw((XI_RAW_MOTION,))
        else:
            self._warp_to_centre(x11)
        x11.XFlush(self._display)
        return ""

    def release(self) -> None:
        if not self.grabbed:
            return
        self.grabbed = False
        x11, _ = _open()
        if self.uses_raw:
            self._select_raw(())  # no raw motion from the whole screen while free
        x11.XUngrabPointer(self._display, 0)
        x11.XFlush(self._display)

    # -- relative motion -----------------------------------------------------------

    def raw(self, data) -> tuple[int, int] | None:
        """An XIRawEvent's data (a cookie's ``data``) -> whole-pixel delta, or None."""
        if not self.grabbed or not self.uses_raw:
            return None
        event = _ffi.cast("XIRawEvent *", _address(data))
        if event.deviceid != event.sourceid:
            return None  # a master device's copy of a slave's event
        axes = self._axes(event.sourceid)
        mask, values = event.valuators.mask, event.raw_values
        delta = [0.0, 0.0]
        index = 0
        for number in range(min(event.valuators.mask_len * 8, 64)):
            if not mask[number // 8] & (1 << (number % 8)):
                continue
            if number < 2:
                delta[number] = self._axis_delta(axes, number, values[index])
            index += 1
        return self._whole(delta)

    def motion(self, x: int, y: int) -> tuple[int, int] | None:
        """Warp-to-centre (no raw events): a motion to (x, y) in the window -> delta."""
        if not self.grabbed or self.uses_raw:
            return None
        centre = (self.window_size[0] // 2, self.window_size[1] // 2)
        if (x, y) == centre:
            return None  # where our own warp put it
        x11, _ = _open()
        self._warp_to_centre(x11)
        x11.XFlush(self._display)
        return (x - centre[0], y - centre[1])

    def _axis_delta(self, axes: _Axes, number: int, value: float) -> float:
        if axes.relative:
            return value
        last, axes.last[number] = axes.last[number], value
        return 0.0 if last is None else (value - last) * axes.scale[number]

    def _whole(self, delta: list[float]) -> tuple[int, int] | None:
        whole = []
        for axis in (0, 1):
            total = self._rest[axis] + delta[axis]
            whole.append(int(total))  # towards zero; the rest goes with the next event
            self._rest[axis] = total - whole[axis]
        return (whole[0], whole[1]) if whole[0] or whole[1] else None

    def _axes(self, device: int) -> _Axes:
        axes = self._devices.get(device)
        if axes is None:
            axes = self._devices[device] = self._query_axes(device)
        return axes

    def _query_axes(self, device: int) -> _Axes:
        """XIQueryDevice: are this device's x and y deltas or positions?"""
        _, xi = _open()
        count = _ffi.new("int *")
        info = xi.XIQueryDevice(self._display, device, count)
        if info == _ffi.NULL:
            return _Axes(True)
        try:
            relative, scale = True, [1.0, 1.0]
            for i in range(info.num_classes):
                if info.classes[i].type != _XI_VALUATOR_CLASS:
                    continue
                axis = _ffi.cast("XIValuatorClassInfo *", info.classes[i])
                if axis.number not in (0, 1):
                    continue
                relative = relative and axis.mode == _XI_MODE_RELATIVE
                span = axis.max - axis.min
                scale[axis.number] = self._screen[axis.number] / span if span > 0 else 1.0
            return _Axes(relative, (scale[0], scale[1]))
        finally:
            xi.XIFreeDeviceInfo(info)

    # -- requests --------------------------------------------------------------------

    def _select_raw(self, events: tuple[int, ...]) -> None:
        _, xi = _open()
        mask = _ffi.new("unsigned char[4]")
        for event in events:
            mask[event // 8] |= 1 << (event % 8)
        # All devices: the reader speaks XI 2.0, to which the server sends raw
        # events of the physical (slave) devices only; ``raw`` keeps only those,
        # so a delta never counts twice should a master's come too.
        masks = _ffi.new("XIEventMask *", {"deviceid": _XI_ALL_DEVICES,
                                            "mask_len": 4, "mask": mask})
        xi.XISelectEvents(self._display, self._root, masks, 1)

    def _warp_to_centre(self, x11) -> None:
        w, h = self.window_size
        x11.XWarpPointer(self._display, 0, self._window, 0, 0, 0, 0, w // 2, h // 2)

    def _invisible_cursor(self, x11) -> int:
        """A 1x1 cursor whose mask is empty (a zero bit): nothing of it is drawn."""
        pixmap = x11.XCreateBitmapFromData(self._display, self._window, b"\0", 1, 1)
        black = _ffi.new("XColor *")
        cursor = x11.XCreatePixmapCursor(self._display, pixmap, pixmap, black, black, 0, 0)
        x11.XFreePixmap(self._display, pixmap)
        return cursor


__all__ = ["XI_RAW_MOTION", "PointerGrab"]
