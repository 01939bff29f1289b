"""The x11 presenter's Xlib requests that need none of its state.

Making the window, asking the window manager whether it is there and for
fullscreen (EWMH), reading the window's geometry, and translating a key event into the
presenter's terms (SDL's key names and modifier bits, as the client reads
them).  rootstream.present.x11 decides when.
"""

from __future__ import annotations

from rootstream._native import xlib
from rootstream._native.xlib import ffi
from rootstream.present.base import PresenterEvent

_NET_WM_STATE_TOGGLE = 2

# X modifier bits -> SDL KMOD_* bits (LSHIFT, LCTRL, LALT, LGUI), as the client reads them.
_MODIFIERS = ((xlib.SHIFT_MASK, 0x0001), (xlib.CONTROL_MASK, 0x0040),
              (xlib.MOD1_MASK, 0x0100), (xlib.MOD4_MASK, 0x0400))


ATOMS = ("WM_PROTOCOLS", "WM_DELETE_WINDOW", "_NET_WM_STATE", "_NET_WM_STATE_FULLSCREEN",
         "_NET_WM_NAME", "UTF8_STRING", "_NET_SUPPORTING_WM_CHECK")


def intern_atoms(libs, display) -> dict[str, int]:
    """The atoms the presenter's requests name, by name."""
    return {atom: libs.x11.XInternAtom(display, atom.encode(), False) for atom in ATOMS}


XA_STRING, XA_WM_CLASS = 31, 67  # predefined atoms (Xatom.h)
WM_CLASS = b"rootstream\0rootstream\0"


def create_window(libs, display, root, size, title: str, atoms) -> tuple[int, object]:
    """An unmapped top-level window of ``size`` titled ``title``, and a GC for it."""
    x11 = libs.x11
    window = x11.XCreateSimpleWindow(display, root, 0, 0, size[0], size[1], 0, 0, 0)
    # No background: the server would clear to it on every resize and
    # expose, a black flash before our next put.
    x11.XSetWindowBackgroundPixmap(display, window, 0)
    x11.XSelectInput(display, window, xlib.KEY_PRESS_MASK | xlib.KEY_RELEASE_MASK
                     | xlib.EXPOSURE_MASK | xlib.STRUCTURE_NOTIFY_MASK)
    x11.XStoreName(display, window, title.encode("latin-1", errors="replace"))
    utf8 = title.encode()
    x11.XChangeProperty(display, window, atoms["_NET_WM_NAME"], atoms["UTF8_STRING"], 8,
                        xlib.PROP_MODE_REPLACE, utf8, len(utf8))
    # ICCCM WM_CLASS (instance and class, each NUL-ended): window managers group
    # and match windows by it, and `xdotool search --class` finds ours by it.
    x11.XChangeProperty(display, window, XA_WM_CLASS, XA_STRING, 8, xlib.PROP_MODE_REPLACE,
                        WM_CLASS, len(WM_CLASS))
    protocols = ffi.new("Atom[1]", [atoms["WM_DELETE_WINDOW"]])
    x11.XSetWMProtocols(display, window, protocols, 1)
    return window, x11.XCreateGC(display, window, 0, ffi.NULL)


def ask_fullscreen_at_map(libs, display, window, atoms) -> None:
    """EWMH: a window not mapped yet asks for fullscreen through its own property."""
    state = ffi.new("Atom[1]", [atoms["_NET_WM_STATE_FULLSCREEN"]])
    libs.x11.XChangeProperty(display, window, atoms["_NET_WM_STATE"], xlib.XA_ATOM, 32,
                             xlib.PROP_MODE_REPLACE, ffi.cast("unsigned char *", state), 1)


def window_manager_running(libs, display, root, atoms) -> bool:
    """Whether an EWMH window manager says it is there (none on a bare Xvfb)."""
    x11 = libs.x11
    actual_type, actual_format = ffi.new("Atom *"), ffi.new("int *")
    count, after = ffi.new("unsigned long *"), ffi.new("unsigned long *")
    data = ffi.new("unsigned char **")
    status = x11.XGetWindowProperty(display, root, atoms["_NET_SUPPORTING_WM_CHECK"], 0, 1,
                                    False, xlib.XA_WINDOW, actual_type, actual_format, count,
                                    after, data)
    found = status == 0 and actual_type[0] == xlib.XA_WINDOW and count[0] == 1
    if data[0] != ffi.NULL:
        x11.XFree(data[0])
    return found


def window_geometry(libs, display, window) -> tuple[int, int, int, int] | None:
    """(x, y, width, height) of ``window``; None when the server does not know it."""
    root, x, y = ffi.new("Window *"), ffi.new("int *"), ffi.new("int *")
    w, h = ffi.new("unsigned int *"), ffi.new("unsigned int *")
    border, depth = ffi.new("unsigned int *"), ffi.new("unsigned int *")
    if not libs.x11.XGetGeometry(display, window, root, x, y, w, h, border, depth):
        return None
    return x[0], y[0], w[0], h[0]


def ask_fullscreen_toggle(libs, display, root, window, atoms) -> None:
    """Ask the window manager to toggle ``window``'s EWMH fullscreen state."""
    message = ffi.new("XEvent *")
    client = ffi.cast("XClientMessageEvent *", message)
    client.type = xlib.CLIENT_MESSAGE
    client.window = window
    client.message_type = atoms["_NET_WM_STATE"]
    client.format = 32
    client.data.l[0] = _NET_WM_STATE_TOGGLE
    client.data.l[1] = atoms["_NET_WM_STATE_FULLSCREEN"]
    client.data.l[3] = 1  # source: a normal application
    libs.x11.XSendEvent(display, root, False,
                        xlib.SUBSTRUCTURE_REDIRECT_MASK | xlib.SUBSTRUCTURE_NOTIFY_MASK, message)


def key_event(libs, key) -> PresenterEvent:
    """An XKeyEvent as the presenter's key event."""
    keysym = libs.x11.XLookupKeysym(key, 0)
    text = libs.x11.XKeysymToString(keysym) if keysym else ffi.NULL
    name = ffi.string(text).decode(errors="replace") if text != ffi.NULL else ""
    if len(name) == 1:
        name = name.upper()  # SDL names letter keys by their capital
    modifiers = 0
    for x_bit, sdl_bit in _MODIFIERS:
        if key.state & x_bit:
            modifiers |= sdl_bit
    return PresenterEvent("key", key=name, pressed=key.type == xlib.KEY_PRESS,
                          modifiers=modifiers)
