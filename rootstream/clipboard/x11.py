"""The X11 CLIPBOARD selection: told of every change (XFIXES), and owned to paste remote text.

One thread and one Display connection of its own, with a small unmapped
window.  No polling: the thread sleeps in select() on the X connection and a
wake pipe.

- Reading: XFIXES reports each new owner of CLIPBOARD
  (XFixesSelectSelectionInput).  When the owner is another client, the
  thread asks it for UTF8_STRING into a property of our window
  (XConvertSelection), reads that property when SelectionNotify arrives and
  hands the bytes to ``on_change``.  A change we caused (our own window
  became the owner) is not reported: that is what keeps a pasted text from
  being sent back.
- Writing: ``set_text`` makes our window the owner and answers every
  SelectionRequest (TARGETS, UTF8_STRING, STRING) with the text, until
  another client takes the selection (SelectionClear).

The text we serve goes in one property write: Xlib uses BIG-REQUESTS, so
1 MiB fits in one request.  Owners that answer with the INCR protocol (xclip
and toolkits do for large texts) are read piece by piece (PropertyNotify).

The project's one Xlib binding (rootstream._native.xlib) provides the
libraries, the error handlers that never exit, and the selection structs and
calls (tests/test_clipboard_transfer.py pins their layout against the
compiled headers).
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections import Counter
from collections.abc import Callable

from rootstream._native import xlib
from rootstream.clipboard import ClipboardError
from rootstream.stage import ThreadGuard

ffi = xlib.ffi  # the one Xlib binding declares the selection structs and calls too

PROPERTY_NOTIFY, SELECTION_CLEAR, SELECTION_REQUEST, SELECTION_NOTIFY = 28, 29, 30, 31
PROPERTY_CHANGE_MASK, PROPERTY_NEW_VALUE = 1 << 22, 0
XFIXES_SELECTION_NOTIFY = 0  # added to the extension's event base
XFIXES_SET_SELECTION_OWNER_NOTIFY_MASK = 1
XA_ATOM, XA_STRING = 4, 31
PROP_MODE_REPLACE, CURRENT_TIME, ANY_PROPERTY_TYPE = 0, 0, 0


class X11Clipboard:
    """Watch and own CLIPBOARD on ``display``; ``on_change(bytes)`` runs on this object's thread."""

    def __init__(self, display: str | None, on_change: Callable[[bytes], None],
                 max_bytes: int) -> None:
        libs = xlib.load()
        if libs.xfixes is None:
            raise ClipboardError("the XFIXES library is missing", hint="install libxfixes3")
        self._x, self._xfixes = libs.x11, libs.xfixes
        name = display if display is not None else os.environ.get("DISPLAY")
        self.dpy = self._x.XOpenDisplay(name.encode() if name else xlib.ffi.NULL)
        if self.dpy == xlib.ffi.NULL:
            what = f"the X display {name}" if name else "an X display ($DISPLAY is not set)"
            raise ClipboardError(f"cannot open {what} for the clipboard",
                                 hint="run it in the desktop session, or give the host --display")
        xlib.watch(self.dpy)
        base = xlib.ffi.new("int *")
        if not libs.xfixes.XFixesQueryExtension(self.dpy, base, xlib.ffi.new("int *")):
            self._x.XCloseDisplay(self.dpy)
            raise ClipboardError("the X server has no XFIXES extension",
                                 hint="the clipboard needs XFIXES selection events")
        self._notify_type = base[0] + XFIXES_SELECTION_NOTIFY
        self.on_change = on_change
        self.max_bytes = max_bytes
        self.counters: Counter[str] = Counter()
        root = self._x.XRootWindow(self.dpy, self._x.XDefaultScreen(self.dpy))
        self.window = self._x.XCreateSimpleWindow(self.dpy, root, 0, 0, 1, 1, 0, 0, 0)
        atom = self._atom
        self.clipboard, self.utf8 = atom("CLIPBOARD"), atom("UTF8_STRING")
        self.targets, self.incr, self.prop = atom("TARGETS"), atom("INCR"), atom("ROOTSTREAM_CLIP")
        self._x.XSelectInput(self.dpy, self.window, PROPERTY_CHANGE_MASK)  # INCR pieces
        self._xfixes.XFixesSelectSelectionInput(self.dpy, self.window, self.clipboard,
                                                XFIXES_SET_SELECTION_OWNER_NOTIFY_MASK)
        self._x.XFlush(self.dpy)
        self._incr: bytearray | None = None  # a large text being read in pieces
        self._owned: bytes | None = None  # the text we serve while we own CLIPBOARD
        self._to_own: bytes | None = None  # set_text's text, for the thread
        self._lock = threading.Lock()
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stop = False
        # A bug (or a descriptor closed under it) in the watcher's thread is
        # kept here; the service's tick raises it and the session ends.
        self.guard = ThreadGuard()
        self._thread = self.guard.thread("clipboard", self._run, name="rootstream-clipboard")
        self._thread.start()

    def _atom(self, name: str) -> int:
        return self._x.XInternAtom(self.dpy, name.encode(), False)

    # -- any thread -----------------------------------------------------------------

    def set_text(self, data: bytes) -> None:
        """Own CLIPBOARD with ``data`` (UTF-8); applied on the clipboard thread."""
        with self._lock:
            self._to_own = data
        os.write(self._wake_write, b"\0")

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"\0")
        self._thread.join(timeout=2)
        self._x.XDestroyWindow(self.dpy, self.window)
        self._x.XCloseDisplay(self.dpy)
        xlib.forget(self.dpy)
        # A descriptor may be gone already (closed under the thread: its failure).
        with contextlib.suppress(OSError):
            os.close(self._wake_read)
        with contextlib.suppress(OSError):
            os.close(self._wake_write)

    # -- the clipboard thread -----------------------------------------------------

    def _run(self) -> None:
        fd = self._x.XConnectionNumber(self.dpy)
        event = xlib.ffi.new("XEvent *")
        while not self._stop and not xlib.connection_lost(self.dpy):
            while self._x.XPending(self.dpy):
                self._x.XNextEvent(self.dpy, event)
                self._handle(event)
            self._x.XFlush(self.dpy)
            ready = select.select([fd, self._wake_read], [], [], 1.0)[0]
            if self._wake_read in ready:
                os.read(self._wake_read, 64)
                with self._lock:
                    data, self._to_own = self._to_own, None
                if data is not None:
                    self._owned = data
                    self._x.XSetSelectionOwner(self.dpy, self.clipboard, self.window,
                                                      CURRENT_TIME)

    def _cast(self, ctype: str, event):
        return ffi.cast(ctype, int(xlib.ffi.cast("uintptr_t", event)))

    def _handle(self, event) -> None:
        kind = event.type
        if kind == self._notify_type:
            notify = self._cast("XFixesSelectionNotifyEvent *", event)
            if notify.owner not in (0, self.window):  # not ours: someone copied
                self._x.XConvertSelection(self.dpy, self.clipboard, self.utf8, self.prop,
                                                 self.window, notify.selection_timestamp)
        elif kind == SELECTION_NOTIFY:
            self._read_reply(self._cast("XSelectionEvent *", event))
        elif kind == SELECTION_REQUEST:
            self._answer(self._cast("XSelectionRequestEvent *", event))
        elif kind == SELECTION_CLEAR:
            self._owned = None
        elif kind == PROPERTY_NOTIFY:
            self._incr_piece(event)

    def _read_reply(self, reply) -> None:
        if reply.property == 0:
            self.counters["not_text"] += 1  # the owner has no UTF-8 form of it
            return
        kind, data = self._take_property()
        if kind == self.incr:
            # Large texts come in pieces: each time we delete the property the
            # owner writes the next piece; an empty piece ends the text.
            self._incr = bytearray()
            self.counters["incr"] += 1
        elif kind is not None:
            self.on_change(data)  # max_bytes + 1 or more when too long: the service says so

    def _incr_piece(self, event) -> None:
        notify = self._cast("XPropertyEvent *", event)
        if self._incr is None or notify.atom != self.prop or notify.state != PROPERTY_NEW_VALUE:
            return
        _, data = self._take_property()
        if data:
            if len(self._incr) <= self.max_bytes:
                self._incr += data
            return
        text, self._incr = bytes(self._incr), None
        self.on_change(text)

    def _take_property(self) -> tuple[int | None, bytes]:
        """Read and delete our property: (its type, its bytes), (None, b"") when absent."""
        actual_type, actual_format = xlib.ffi.new("Atom *"), xlib.ffi.new("int *")
        nitems, after = xlib.ffi.new("unsigned long *"), xlib.ffi.new("unsigned long *")
        prop = xlib.ffi.new("unsigned char **")
        longs = self.max_bytes // 4 + 1  # one byte more than allowed tells "too long"
        self._x.XGetWindowProperty(self.dpy, self.window, self.prop, 0, longs, True,
                                   ANY_PROPERTY_TYPE, actual_type, actual_format, nitems, after,
                                   prop)
        if prop[0] == xlib.ffi.NULL:
            return None, b""
        try:
            size = nitems[0] * max(actual_format[0], 8) // 8
            return actual_type[0], bytes(xlib.ffi.buffer(prop[0], size))
        finally:
            self._x.XFree(prop[0])

    def _answer(self, request) -> None:
        reply = xlib.ffi.new("XEvent *")
        notify = self._cast("XSelectionEvent *", reply)
        notify.type = SELECTION_NOTIFY
        notify.display = request.display
        notify.requestor, notify.selection = request.requestor, request.selection
        notify.target, notify.time = request.target, request.time
        prop = request.property or request.target  # an obsolete client names none
        notify.property = 0
        data = self._owned
        if data is not None and request.target == self.targets:
            atoms = xlib.ffi.new("Atom[3]", [self.targets, self.utf8, XA_STRING])
            self._x.XChangeProperty(self.dpy, request.requestor, prop, XA_ATOM, 32,
                                    PROP_MODE_REPLACE, xlib.ffi.cast("unsigned char *", atoms), 3)
            notify.property = prop
        elif data is not None and request.target in (self.utf8, XA_STRING):
            self._x.XChangeProperty(self.dpy, request.requestor, prop, request.target, 8,
                                    PROP_MODE_REPLACE,
                                    xlib.ffi.from_buffer("unsigned char[]", data), len(data))
            notify.property = prop
        self._x.XSendEvent(self.dpy, request.requestor, False, 0, reply)
