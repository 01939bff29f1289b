"""The Wayland clipboard through wlr data-control: told of every change, and set to paste.

The same interface as rootstream.clipboard.x11.X11Clipboard: one thread with
a Wayland connection of its own, sleeping in select() on the connection's fd
and a wake pipe (no polling); ``on_change(bytes)`` runs on that thread.

zwlr_data_control_manager_v1 (sway and the other wlroots compositors offer
it; what wl-clipboard uses) lets a client with no window and no focus read
and set the selection:

- Reading: the data device announces every new selection as an offer with
  its MIME types; when it has a text type we ask for it (``receive`` with the
  write end of a pipe) and read the pipe to its end, at most max_bytes + 1
  bytes (one more tells the service "too long").
- Writing: ``set_text`` creates a source offering the text types and makes
  it the selection; each ``send`` event gets the text written to its fd (on a
  short-lived thread, so a slow reader never stalls the connection), until
  another client takes the selection (``cancelled``).
- Never an echo: the compositor announces our own selection to us like any
  other.  Our sources also offer a private MIME type, unique to this object;
  an offer that carries it is ours and is not reported.

The selection that exists when we connect is not reported either: as with
XFIXES on X11, only changes are.  The primary selection is not shared.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import threading
import time
from collections import Counter
from collections.abc import Callable

from rootstream.clipboard import ClipboardError
from rootstream.clipboard import wayland_protocol as wp
from rootstream.clipboard.wayland_protocol import ffi
from rootstream.stage import ThreadGuard

# Text types, preferred first: the MIME type, then the X11 names XWayland and
# older toolkits offer.
TEXT_TYPES = (b"text/plain;charset=utf-8", b"UTF8_STRING", b"text/plain", b"STRING", b"TEXT")
READ_STALL_S = 2.0  # an owner that stops writing this long has given up
READ_LIMIT_S = 10.0  # and one that trickles is not waited for longer than this in all


class WaylandClipboard:
    """Watch and set the selection of the Wayland display ``display`` (default $WAYLAND_DISPLAY)."""

    def __init__(self, display: str | None, on_change: Callable[[bytes], None],
                 max_bytes: int) -> None:
        self._wl = wl = wp.Wayland.load()
        self._lib = wl.lib
        name = display if display is not None else os.environ.get("WAYLAND_DISPLAY")
        self.display = self._lib.wl_display_connect(name.encode() if name else ffi.NULL)
        if self.display == ffi.NULL:
            what = f"the Wayland display {name}" if name else "a Wayland display"
            raise ClipboardError(f"cannot connect to {what} for the clipboard",
                                 hint="run it in the desktop session ($WAYLAND_DISPLAY)")
        self.on_change = on_change
        self.max_bytes = max_bytes
        self.counters: Counter[str] = Counter()
        self._marker = f"application/x-rootstream-{secrets.token_hex(8)}".encode()
        self._handlers: dict[int, Callable] = {}  # proxy address -> its event handler
        self._dispatcher = ffi.callback("wl_dispatcher_func_t", self._dispatch)
        self._offer_types: dict[int, set[bytes]] = {}  # offers announced, their MIME types
        self._selection = ffi.NULL  # the current selection's offer
        self._source = ffi.NULL  # our source while it is the selection
        self._owned = b""  # the text it serves
        self._reporting = False  # off until the first (existing) selection went by
        try:
            self._bind_globals()
        except BaseException:
            self._lib.wl_display_disconnect(self.display)
            raise
        self._to_own: bytes | None = None
        self._lock = threading.Lock()
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stop = False
        # A bug (or a descriptor closed under it) in the watcher's thread is
        # kept here; the service's tick raises it and the session ends.
        self.guard = ThreadGuard()
        self._thread = self.guard.thread("clipboard", self._run, name="rootstream-clipboard")
        self._thread.start()

    def _bind_globals(self) -> None:
        wl, lib = self._wl, self._lib
        registry = wl.request(self.display, wp.DISPLAY_GET_REGISTRY, [None],
                              creates=wl.registry_interface)
        globals_: dict[bytes, tuple[int, int]] = {}

        def on_global(opcode, args):
            if opcode == wp.REGISTRY_GLOBAL:
                globals_.setdefault(ffi.string(args[1].s), (args[0].u, args[2].u))

        self._listen(registry, on_global)
        if lib.wl_display_roundtrip(self.display) < 0:
            raise ClipboardError("the Wayland compositor closed the connection",
                                 hint="check that the desktop session is running")
        if wp.MANAGER.encode() not in globals_:
            raise ClipboardError("the Wayland compositor does not offer the wlr data-control "
                                 "protocol", hint="sway and other wlroots desktops do; elsewhere"
                                 " the X11 (XWayland) clipboard is shared instead")
        if b"wl_seat" not in globals_:
            raise ClipboardError("the Wayland compositor has no seat",
                                 hint="the clipboard belongs to a seat")
        seat = self._bind(registry, globals_[b"wl_seat"][0], wl.seat_interface, 1)
        number, version = globals_[wp.MANAGER.encode()]
        self._manager = self._bind(registry, number, wl.interfaces[wp.MANAGER],
                                   min(version, wp.PROTOCOL_VERSION))
        self._device = wl.request(self._manager, wp.MANAGER_GET_DATA_DEVICE, [None, seat],
                                  creates="zwlr_data_control_device_v1")
        self._listen(self._device, self._on_device)
        if lib.wl_display_roundtrip(self.display) < 0:  # the existing selection arrives here
            raise ClipboardError("the Wayland compositor refused the clipboard's requests",
                                 hint="its data-control protocol may be too old or different")
        self._reporting = True

    def _bind(self, registry, number: int, interface, version: int):
        name = ffi.string(interface.name)
        return self._wl.request(registry, wp.REGISTRY_BIND, [number, name, version, None],
                                creates=interface, version=version)

    def _listen(self, proxy, handler: Callable) -> None:
        self._handlers[_key(proxy)] = handler
        self._lib.wl_proxy_add_dispatcher(ffi.cast("struct wl_proxy *", proxy), self._dispatcher,
                                          ffi.NULL, ffi.NULL)

    def _dispatch(self, _data, target, opcode, _message, args) -> int:
        handler = self._handlers.get(_key(target))
        try:
            if handler is not None:
                handler(opcode, args)
        except Exception:  # noqa: BLE001 - an exception must not cross libwayland's C frames
            self.counters["handler_errors"] += 1
        return 0

    def _destroy(self, proxy, opcode: int) -> None:
        key = _key(proxy)
        self._handlers.pop(key, None)
        self._offer_types.pop(key, None)
        self._wl.request(proxy, opcode, [], destroy=True)

    # -- any thread -----------------------------------------------------------------

    def set_text(self, data: bytes) -> None:
        """Make ``data`` (UTF-8) the selection; applied on the clipboard thread."""
        with self._lock:
            self._to_own = data
        os.write(self._wake_write, b"\0")

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"\0")
        self._thread.join(timeout=2)
        self._lib.wl_display_disconnect(self.display)  # the compositor drops our objects
        # A descriptor may be gone already (closed under the thread: its failure).
        with contextlib.suppress(OSError):
            os.close(self._wake_read)
        with contextlib.suppress(OSError):
            os.close(self._wake_write)

    # -- the clipboard thread -----------------------------------------------------

    def _run(self) -> None:
        lib, display = self._lib, self.display
        fd = lib.wl_display_get_fd(display)
        while not self._stop:
            # libwayland's rule for a loop of its own: prepare, flush, wait, read.
            while lib.wl_display_prepare_read(display) != 0:
                if lib.wl_display_dispatch_pending(display) < 0:
                    self.counters["connection_lost"] += 1
                    return
            lib.wl_display_flush(display)
            ready = select.select([fd, self._wake_read], [], [])[0]
            if fd in ready:
                lib.wl_display_read_events(display)
            else:
                lib.wl_display_cancel_read(display)
            if lib.wl_display_dispatch_pending(display) < 0 or lib.wl_display_get_error(display):
                self.counters["connection_lost"] += 1
                return  # the compositor is gone: nothing more to watch
            if self._wake_read in ready:
                os.read(self._wake_read, 64)
                with self._lock:
                    data, self._to_own = self._to_own, None
                if data is not None and not self._stop:
                    self._own(data)

    def _on_device(self, opcode, args) -> None:
        if opcode == wp.DEVICE_DATA_OFFER:
            offer = args[0].o
            types = self._offer_types[_key(offer)] = set()
            self._listen(offer, lambda op, a: types.add(ffi.string(a[0].s)))
        elif opcode == wp.DEVICE_SELECTION:
            if self._selection != ffi.NULL:
                self._destroy(self._selection, wp.OFFER_DESTROY)
            self._selection = args[0].o
            if self._selection != ffi.NULL and self._reporting:
                self._read_selection(self._selection)
        elif opcode == wp.DEVICE_PRIMARY_SELECTION and args[0].o != ffi.NULL:
            self._destroy(args[0].o, wp.OFFER_DESTROY)  # not shared
        elif opcode == wp.DEVICE_FINISHED:
            self.counters["device_finished"] += 1  # the seat went away

    def _read_selection(self, offer) -> None:
        types = self._offer_types.get(_key(offer), set())
        if self._marker in types:
            self.counters["own_selection"] += 1  # what we pasted: never echoed
            return
        mime = next((t for t in TEXT_TYPES if t in types), None)
        if mime is None:
            self.counters["not_text"] += 1  # an image, files...: nothing to share
            return
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            self._wl.request(offer, wp.OFFER_RECEIVE, [mime, write_end])
            self._lib.wl_display_flush(self.display)
        finally:
            os.close(write_end)  # libwayland sent its own copy
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            data = self._read_pipe(pipe)
        if data is not None:
            self.on_change(data)  # max_bytes + 1 or more when too long: the service says so

    def _read_pipe(self, pipe) -> bytes | None:
        data = bytearray()
        deadline = time.monotonic() + READ_LIMIT_S
        while len(data) <= self.max_bytes:
            wait = min(READ_STALL_S, deadline - time.monotonic())
            if wait <= 0 or not select.select([pipe], [], [], wait)[0]:
                self.counters["read_stalled"] += 1
                return None
            piece = pipe.read(min(65536, self.max_bytes + 1 - len(data)))
            if not piece:
                break
            data += piece
        return bytes(data)

    def _own(self, data: bytes) -> None:
        wl = self._wl
        source = wl.request(self._manager, wp.MANAGER_CREATE_DATA_SOURCE, [None],
                            creates="zwlr_data_control_source_v1")
        self._listen(source, lambda op, a, src=source: self._on_source(src, op, a))
        for mime in (*TEXT_TYPES, self._marker):
            wl.request(source, wp.SOURCE_OFFER, [mime])
        wl.request(self._device, wp.DEVICE_SET_SELECTION, [source])
        self._source, self._owned = source, data

    def _on_source(self, source, opcode, args) -> None:
        if opcode == wp.SOURCE_SEND:
            fd = args[1].h
            data = self._owned if source == self._source else b""
            threading.Thread(target=_write_and_close, args=(fd, data), daemon=True).start()
        elif opcode == wp.SOURCE_CANCELLED:  # another client took the selection
            if source == self._source:
                self._source, self._owned = ffi.NULL, b""
            self._destroy(source, wp.SOURCE_DESTROY)


def _key(proxy) -> int:
    """A proxy's address: what the dispatcher is given back as its target."""
    return int(ffi.cast("uintptr_t", proxy))


def _write_and_close(fd: int, data: bytes) -> None:
    """Serve one paste; a reader that goes away early is not our problem."""
    deadline = time.monotonic() + 10
    try:
        view = memoryview(data)
        while view and time.monotonic() < deadline:
            view = view[os.write(fd, view):]
    except OSError:
        pass
    finally:
        os.close(fd)
