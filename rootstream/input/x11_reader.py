"""The keyboard and pointer of the client's X window, read on a connection and thread of their own.

WHY: the client's window loop reads SDL's events between waiting for a
picture and presenting it (11 ms and more per frame without a GPU), so a key
pressed during a present used to wait for the present to end.  This reader
does not share that loop: it blocks in poll() on its own X connection and
hands each batch of events to ``on_batch`` the moment the server sends it.
It serves every presenter that has an X window (``sdl`` under X11 and
``x11``); ``kms`` has no X server to read from.

What it selects on the window, from its own connection (X lets any number of
clients select these on one window; each gets its own copy of the event):
KeyPress/KeyRelease, PointerMotion (and XInput2's XI_Motion, see
``_select_xi2``), FocusChange and StructureNotify (the window's size,
for mapping the pointer).  Core key events go only to the
window that has the keyboard focus, so keys are read only while the client's
window is focused, without a global hook.

Buttons (and the wheel, X buttons 4-7) with ``buttons=True``, through XInput2:
X gives a window's ButtonPress to one client, and to its XI2 client before
any core one, so selecting XI_ButtonPress here takes the clicks from SDL's
core selection (SDL 2.32 selects no XI2 buttons) and from nobody on the x11
presenter's window.  While SDL grabs the pointer (pointer capture), the grab
sends them to SDL alone, as it does the keys.  Without XI2 the core
selection is tried; when someone else holds the buttons, ``reads_buttons``
stays False and the window's owner keeps them.

Auto-repeat: the connection asks XKB for detectable auto-repeat, so a held
key repeats as presses only (no fake releases), which the consumer drops:
the host's own auto-repeat runs while the key is held.

Batches: everything readable at one wake-up is one batch, in the order the
server sent it; motions only collapse when several follow each other in the
same batch (the last position wins, relative deltas add up), so motion is
never held back.

Pointer capture (the x11 presenter's Ctrl+Alt+Shift+Z): ``toggle_pointer_capture``
asks this thread to grab or release the pointer (rootstream.input.x11_pointer_grab);
while grabbed, motion comes as "relative" items.  A focus loss, the toggle
again and ``stop`` release it; ``on_capture(captured, problem)`` says each
change, between batches, on this thread.
"""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable
from dataclasses import dataclass

from cffi import FFI

from rootstream._native import xlib
from rootstream._native.xlib import ffi
from rootstream.errors import CaptureError, InputError, RootStreamError
from rootstream.input.x11_pointer_grab import XI_RAW_MOTION, PointerGrab

_KEY_PRESS, _KEY_RELEASE, _BUTTON_PRESS, _BUTTON_RELEASE, _MOTION_NOTIFY = 2, 3, 4, 5, 6
_FOCUS_IN, _FOCUS_OUT, _CONFIGURE_NOTIFY = 9, 10, 22
_NOTIFY_GRAB, _NOTIFY_UNGRAB = 1, 2  # focus "moves" while a grab starts/ends: not real
_MASK = (1 << 0) | (1 << 1) | (1 << 6) | (1 << 17) | (1 << 21)
_BUTTON_MASK = (1 << 2) | (1 << 3)
X_KEYCODE_OFFSET = 8  # X keycode = evdev code + 8 on every evdev-numbered server

# XKB's detectable auto-repeat and the focus event's mode are not in the
# shared Xlib declarations; the display pointer crosses over as an address.
_xkb = FFI()
_xkb.cdef("""
int XkbSetDetectableAutoRepeat(void *dpy, int detectable, int *supported);
typedef struct { int type; unsigned long serial; int send_event; void *display;
                 unsigned long window; int mode; int detail; } XFocusChangeEvent;
typedef struct { int type; unsigned long serial; int send_event; void *display;
                 int extension; int evtype; unsigned int cookie; void *data; } Cookie;
/* XIDeviceEvent up to the fields read here. */
typedef struct { int type; unsigned long serial; int send_event; void *display;
                 int extension; int evtype; unsigned long time; int deviceid, sourceid, detail;
                 unsigned long root, event, child;
                 double root_x, root_y, event_x, event_y; } XIDeviceEventHead;
int XGetEventData(void *dpy, void *cookie);
void XFreeEventData(void *dpy, void *cookie);
""")
_XI_BUTTON_PRESS, _XI_BUTTON_RELEASE, _XI_MOTION = 4, 5, 6


@dataclass(frozen=True, slots=True)
class WindowInput:
    """One thing the reader saw.  kind: "key" (code: evdev KEY_*, pressed,
    state: X modifier bits), "motion" (x, y: window pixels), "relative" (x, y:
    a captured pointer's delta in pixels), "button" (code: the X button
    number, 4-7 being the wheel; pressed, x, y), "focus" (pressed: gained)."""

    kind: str
    code: int = 0
    pressed: bool = False
    x: int = 0
    y: int = 0
    state: int = 0


OnBatch = Callable[[list[WindowInput], tuple[int, int]], None]
OnCapture = Callable[[bool, str], None]


class X11InputReader:
    """Read ``window``'s keys and pointer on ``display``; ``on_batch(events,
    window_size)`` runs on the reader's thread.  ``start()`` raises InputError
    when the display or window cannot be read; ``stop()`` is safe twice."""

    def __init__(self, window: int, on_batch: OnBatch, *, display: str | None = None,
                 buttons: bool = False, on_capture: OnCapture | None = None,
                 raw_motion: bool = True):
        self.window = int(window)
        self._on_batch = on_batch
        self._buttons = buttons
        self._on_capture = on_capture
        self._raw_motion = raw_motion  # False: warp-to-centre even where XI2 is there
        self.grab: PointerGrab | None = None  # made by start()
        self._release_grab = False  # a focus loss in this batch: let go after it
        self.reads_buttons = False  # set by start(): the clicks come here
        self._start_errors: list[str] = []
        self._display_name = display or os.environ.get("DISPLAY", "")
        self._display = None
        self._xi_opcode = -1
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1
        self.size = (0, 0)
        self.batches = 0
        self.failed_batches = 0
        self.error = ""  # why the thread stopped early, or the last batch that failed

    def start(self) -> None:
        try:
            libs = xlib.load()
        except CaptureError as exc:
            raise InputError(str(exc), hint=exc.hint, details=exc.details) from exc
        x11 = libs.x11
        display = x11.XOpenDisplay(self._display_name.encode()) if self._display_name \
            else ffi.NULL
        if display == ffi.NULL:
            raise InputError("cannot read input from the X display",
                             hint="set DISPLAY to the display the client's window is on",
                             details=[f"cannot connect to X display {self._display_name!r}"])
        xlib.watch(display)
        self._display = display
        with xlib.errors_recorded():  # a vanished window must not exit the process
            x11.XSelectInput(display, self.window, _MASK)
            self._xi_opcode = self._select_xi2(libs)
            if self._buttons:
                self.reads_buttons = self._select_buttons(x11, libs.xi)
            supported = _xkb.new("int *")
            _xkb_lib().XkbSetDetectableAutoRepeat(_xkb.cast("void *", _address(display)), 1,
                                                  supported)
            self.size = self._geometry(x11)
            screen = x11.XDefaultScreen(display)
            self.grab = PointerGrab(display, self.window, x11.XRootWindow(display, screen),
                                    self.size, (x11.XDisplayWidth(display, screen),
                                                x11.XDisplayHeight(display, screen)),
                                    use_raw=self._raw_motion and self._xi_opcode >= 0)
            x11.XSync(display, False)
        errors = self._start_errors + xlib.take_errors(display)
        if errors or self.size == (0, 0):
            self._close_display()
            raise InputError("cannot read input from the client's window",
                             hint="the window closed before its input could be read",
                             details=errors or [f"window 0x{self.window:x} has no size"])
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="x11-input", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            os.write(self._wake_w, b"x")
            thread.join(timeout=2)
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        self._close_display()

    def toggle_pointer_capture(self) -> None:
        """Grab the pointer, or let it go: done on the reader's thread (any thread may ask)."""
        if self.running:
            os.write(self._wake_w, b"z")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the reader's thread ------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            if self.grab is not None and self.grab.grabbed and not xlib.connection_lost(
                    self._display):
                self._set_capture(False)

    def _loop(self) -> None:
        x11 = xlib.load().x11
        display = self._display
        poller = select.poll()
        poller.register(x11.XConnectionNumber(display), select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        event = ffi.new("XEvent *")
        while True:
            batch: list[WindowInput] = []
            # Xlib may already hold events read during an earlier request:
            # drain its queue before sleeping on the socket.
            while x11.XPending(display):
                x11.XNextEvent(display, event)
                self._translate(event, batch)
            if batch:
                self.batches += 1
                try:
                    self._on_batch(_coalesce(batch), self.size)
                except RootStreamError as exc:
                    # A send that failed (the network went away for a moment):
                    # this batch is lost, the snapshots heal the held state,
                    # and the next key must still be read.
                    self.failed_batches += 1
                    self.error = str(exc)
            if self._release_grab:
                self._release_grab = False
                self._set_capture(False)
            if xlib.connection_lost(display):
                self.error = "lost the connection to the X display"
                return
            ready = poller.poll()
            if any(fd == self._wake_r for fd, _ in ready):
                asked = os.read(self._wake_r, 64)
                if b"x" in asked:
                    return
                for _ in range(asked.count(b"z")):
                    self._set_capture(not self.grab.grabbed)

    def _set_capture(self, want: bool) -> None:
        """Grab or release, then tell ``on_capture``; a refused grab says why."""
        grab = self.grab
        problem = ""
        if want:
            grab.window_size = self.size
            problem = grab.grab()
        else:
            grab.release()
        if self._on_capture is not None:
            try:
                self._on_capture(grab.grabbed, problem)
            except RootStreamError as exc:
                self.error = str(exc)

    def _translate(self, event, batch: list[WindowInput]) -> None:
        kind = event.type
        if kind in (_KEY_PRESS, _KEY_RELEASE):
            key = ffi.cast("XKeyEvent *", event)
            if key.window == self.window:
                batch.append(WindowInput("key", key.keycode - X_KEYCODE_OFFSET,
                                         kind == _KEY_PRESS, state=key.state))
        elif kind in (_BUTTON_PRESS, _BUTTON_RELEASE):
            button = ffi.cast("XKeyEvent *", event)  # XButtonEvent: ``button`` at ``keycode``
            if button.window == self.window:
                batch.append(WindowInput("button", button.keycode, kind == _BUTTON_PRESS,
                                         button.x, button.y, button.state))
        elif kind == _MOTION_NOTIFY:
            # XMotionEvent shares XKeyEvent's fields up to ``state``.
            motion = ffi.cast("XKeyEvent *", event)
            if motion.window == self.window:
                self._motion(motion.x, motion.y, batch)
        elif kind in (_FOCUS_IN, _FOCUS_OUT):
            focus = _xkb.cast("XFocusChangeEvent *", _address(event))
            if focus.mode not in (_NOTIFY_GRAB, _NOTIFY_UNGRAB):
                batch.append(WindowInput("focus", pressed=kind == _FOCUS_IN))
                self._release_grab |= kind == _FOCUS_OUT and self.grab.grabbed
        elif kind == xlib.GENERIC_EVENT:
            self._xi2_event(event, batch)
        elif kind == _CONFIGURE_NOTIFY:
            configure = ffi.cast("XConfigureEvent *", event)
            if configure.window == self.window:
                self.size = (configure.width, configure.height)
                self.grab.window_size = self.size

    def _select_buttons(self, x11, xi) -> bool:
        """Ask for the clicks (XI2, else core); False when another client holds them."""
        x11.XSync(self._display, False)
        earlier = xlib.take_errors(self._display)
        if self._xi_opcode >= 0:
            self._xi_select(xi, (_XI_MOTION, _XI_BUTTON_PRESS, _XI_BUTTON_RELEASE))
        else:
            x11.XSelectInput(self._display, self.window, _MASK | _BUTTON_MASK)
        x11.XSync(self._display, False)
        refused = xlib.take_errors(self._display)
        self._start_errors += earlier  # start() still sees what failed before
        if not refused:
            return True
        if self._xi_opcode >= 0:  # BadAccess: someone's; keep motion alone
            self._xi_select(xi, (_XI_MOTION,))
        else:
            x11.XSelectInput(self._display, self.window, _MASK)
        return False

    def _xi_select(self, xi, events) -> None:
        mask = ffi.new("unsigned char[]", max(events) // 8 + 1)
        for event in events:
            mask[event // 8] |= 1 << (event % 8)
        masks = ffi.new("XIEventMask *", {"deviceid": xlib.XI_ALL_MASTER_DEVICES,
                                          "mask_len": len(mask), "mask": mask})
        xi.XISelectEvents(self._display, self.window, masks, 1)

    def _select_xi2(self, libs) -> int:
        """XInput2 motion on the window too; the XInput opcode, or -1 without XI2.

        WHY: X delivers a pointer event to the XI2 clients of a window before
        its core clients, and only to them: SDL 2.32 selects XI_Motion on its
        window, so core MotionNotify never reaches us there.
        """
        x11, xi = libs.x11, libs.xi
        opcode, event_base, error_base = (ffi.new("int *") for _ in range(3))
        major, minor = ffi.new("int *", 2), ffi.new("int *", 0)
        if (xi is None or not x11.XQueryExtension(self._display, b"XInputExtension", opcode,
                                                  event_base, error_base)
                or xi.XIQueryVersion(self._display, major, minor) != 0):
            return -1
        self._xi_opcode = opcode[0]
        self._xi_select(xi, (_XI_MOTION,))
        return opcode[0]

    def _motion(self, x: int, y: int, batch: list[WindowInput]) -> None:
        if not self.grab.grabbed:
            batch.append(WindowInput("motion", x=x, y=y))
            return
        delta = self.grab.motion(x, y)  # warp-to-centre; None with raw motion
        if delta is not None:
            batch.append(WindowInput("relative", x=delta[0], y=delta[1]))

    def _xi2_event(self, event, batch: list[WindowInput]) -> None:
        cookie = _xkb.cast("Cookie *", _address(event))
        if cookie.extension != self._xi_opcode or cookie.evtype not in (
                _XI_MOTION, _XI_BUTTON_PRESS, _XI_BUTTON_RELEASE, XI_RAW_MOTION):
            return
        display = _xkb.cast("void *", _address(self._display))
        if not _xkb_lib().XGetEventData(display, cookie):
            return
        try:
            if cookie.evtype == XI_RAW_MOTION:  # on the root window, while grabbed
                delta = self.grab.raw(cookie.data)
                if delta is not None:
                    batch.append(WindowInput("relative", x=delta[0], y=delta[1]))
                return
            device = _xkb.cast("XIDeviceEventHead *", cookie.data)
            if device.event != self.window:
                return
            x, y = int(device.event_x), int(device.event_y)
            if cookie.evtype == _XI_MOTION:
                self._motion(x, y, batch)
            else:
                batch.append(WindowInput("button", device.detail,
                                         cookie.evtype == _XI_BUTTON_PRESS, x, y))
        finally:
            _xkb_lib().XFreeEventData(display, cookie)

    def _geometry(self, x11) -> tuple[int, int]:
        root, x, y = ffi.new("Window *"), ffi.new("int *"), ffi.new("int *")
        w, h = ffi.new("unsigned int *"), ffi.new("unsigned int *")
        border, depth = ffi.new("unsigned int *"), ffi.new("unsigned int *")
        if not x11.XGetGeometry(self._display, self.window, root, x, y, w, h, border, depth):
            return (0, 0)
        return (w[0], h[0])

    def _close_display(self) -> None:
        display, self._display = self._display, None
        if display is not None:
            xlib.load().x11.XCloseDisplay(display)
            xlib.forget(display)


def _coalesce(batch: list[WindowInput]) -> list[WindowInput]:
    """Motions that follow each other in one batch: only the last position matters,
    and relative deltas add up."""
    out: list[WindowInput] = []
    for item in batch:
        if item.kind == "motion" and out and out[-1].kind == "motion":
            out[-1] = item
        elif item.kind == "relative" and out and out[-1].kind == "relative":
            out[-1] = WindowInput("relative", x=out[-1].x + item.x, y=out[-1].y + item.y)
        else:
            out.append(item)
    return out


def _address(pointer) -> int:
    return int(ffi.cast("uintptr_t", pointer))


_xkb_library = None


def _xkb_lib():
    global _xkb_library
    if _xkb_library is None:
        _xkb_library = _xkb.dlopen("libX11.so.6")
    return _xkb_library


__all__ = ["WindowInput", "X11InputReader", "X_KEYCODE_OFFSET"]
