"""Xlib, MIT-SHM, XDAMAGE, XRandR, XFIXES, XInput2 and XTEST declarations for cffi's ABI mode.

The one Xlib binding: used by the X11 capture, the x11 presenter (a window
of its own), the xtest injector and the clipboard.

Nothing here is compiled: the shared libraries are opened with ``dlopen`` the
first time a display is opened, so installing rootstream needs no X headers and
a machine without libX11 only loses the x11 backend.  In ABI mode cffi cannot
check structure layouts against headers, so every struct below is declared
field for field, in order, exactly as in Xlib.h / XShm.h / Xdamage.h /
Xrandr.h / Xfixes.h / XInput2.h (tests/test_capture_xlib_abi.py compiles those
headers and compares every size, offset and constant).

Xlib's default error handlers print and call ``exit()``.  A capture stage must
never take the host down, so the first ``load()`` installs handlers that only
record: protocol errors per display (``take_errors``), and a lost connection
as a flag (``connection_lost``) checked after every round trip.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass

import numpy as np
from cffi import FFI

from rootstream.errors import CaptureError

ffi = FFI()
ffi.cdef(
    """
    typedef unsigned long XID;
    typedef XID Window;
    typedef XID Drawable;
    typedef XID Pixmap;
    typedef XID Atom;
    typedef XID Damage;
    typedef XID XserverRegion;
    typedef XID RROutput;
    typedef unsigned long Time;
    typedef unsigned long ShmSeg;
    typedef int Bool;
    typedef int Status;
    typedef char *XPointer;
    typedef struct _XDisplay Display;
    typedef struct _Visual Visual;
    typedef struct _XGC *GC;

    typedef struct {
        int type;
        Display *display;
        XID resourceid;
        unsigned long serial;
        unsigned char error_code;
        unsigned char request_code;
        unsigned char minor_code;
    } XErrorEvent;

    typedef union _XEvent {
        int type;
        long pad[24];
    } XEvent;

    typedef struct {
        short x, y;
        unsigned short width, height;
    } XRectangle;

    typedef struct {
        int type;
        unsigned long serial;
        Bool send_event;
        Display *display;
        Drawable drawable;
        Damage damage;
        int level;
        Bool more;
        Time timestamp;
        XRectangle area;
        XRectangle geometry;
    } XDamageNotifyEvent;

    typedef struct _XImage {
        int width, height;
        int xoffset;
        int format;
        char *data;
        int byte_order;
        int bitmap_unit;
        int bitmap_bit_order;
        int bitmap_pad;
        int depth;
        int bytes_per_line;
        int bits_per_pixel;
        unsigned long red_mask;
        unsigned long green_mask;
        unsigned long blue_mask;
        XPointer obdata;
        struct {
            void *create_image;
            void *destroy_image;
            void *get_pixel;
            void *put_pixel;
            void *sub_image;
            void *add_pixel;
        } f;
    } XImage;

    typedef struct {
        ShmSeg shmseg;
        int shmid;
        char *shmaddr;
        Bool readOnly;
    } XShmSegmentInfo;

    typedef struct {
        Atom name;
        Bool primary;
        Bool automatic;
        int noutput;
        int x;
        int y;
        int width;
        int height;
        int mwidth;
        int mheight;
        RROutput *outputs;
    } XRRMonitorInfo;

    typedef struct {
        int type;
        unsigned long serial;
        Bool send_event;
        Display *display;
        int extension;
        int evtype;
        unsigned int cookie;
        void *data;
    } XGenericEventCookie;

    typedef struct {
        short x, y;
        unsigned short width, height;
        unsigned short xhot, yhot;
        unsigned long cursor_serial;
        unsigned long *pixels;
        Atom atom;
        const char *name;
    } XFixesCursorImage;

    typedef struct {
        int deviceid;
        int mask_len;
        unsigned char *mask;
    } XIEventMask;

    /* A window of our own (the x11 presenter): the events it reads. */
    typedef unsigned long KeySym;

    typedef struct {
        int type;
        unsigned long serial;
        Bool send_event;
        Display *display;
        Window window;
        Window root;
        Window subwindow;
        Time time;
        int x, y;
        int x_root, y_root;
        unsigned int state;
        unsigned int keycode;
        Bool same_screen;
    } XKeyEvent;

    typedef struct {
        int type;
        unsigned long serial;
        Bool send_event;
        Display *display;
        Window window;
        int x, y;
        int width, height;
        int count;
    } XExposeEvent;

    typedef struct {
        int type;
        unsigned long serial;
        Bool send_event;
        Display *display;
        Window event;
        Window window;
        int x, y;
        int width, height;
        int border_width;
        Window above;
        Bool override_redirect;
    } XConfigureEvent;

    typedef struct {
        int type;
        unsigned long serial;
        Bool send_event;
        Display *display;
        Window window;
        Atom message_type;
        int format;
        union {
            char b[20];
            short s[10];
            long l[5];
        } data;
    } XClientMessageEvent;

    typedef struct {
        int type;
        unsigned long serial;
        Bool send_event;
        Display *display;
        Drawable drawable;
        int major_code;
        int minor_code;
        ShmSeg shmseg;
        unsigned long offset;
    } XShmCompletionEvent;

    typedef int (*XErrorHandler)(Display *, XErrorEvent *);
    typedef int (*XIOErrorHandler)(Display *);
    typedef void (*XIOErrorExitHandler)(Display *, void *);

    Display *XOpenDisplay(const char *name);
    int XCloseDisplay(Display *dpy);
    int XConnectionNumber(Display *dpy);
    int XDefaultScreen(Display *dpy);
    Window XRootWindow(Display *dpy, int screen);
    Visual *XDefaultVisual(Display *dpy, int screen);
    int XDefaultDepth(Display *dpy, int screen);
    int XDisplayWidth(Display *dpy, int screen);
    int XDisplayHeight(Display *dpy, int screen);
    int XPending(Display *dpy);
    int XNextEvent(Display *dpy, XEvent *event);
    int XSync(Display *dpy, Bool discard);
    int XFlush(Display *dpy);
    int XFree(void *data);
    char *XGetAtomName(Display *dpy, Atom atom);
    Atom XInternAtom(Display *dpy, const char *name, Bool only_if_exists);
    XErrorHandler XSetErrorHandler(XErrorHandler handler);
    XIOErrorHandler XSetIOErrorHandler(XIOErrorHandler handler);
    void XSetIOErrorExitHandler(Display *dpy, XIOErrorExitHandler handler, void *data);
    XImage *XGetImage(Display *dpy, Drawable d, int x, int y, unsigned int width,
                      unsigned int height, unsigned long plane_mask, int format);
    int XDestroyImage(XImage *image);

    /* Drawing, for clients that put pictures on a display: the tests, and a
       glass-to-glass probe that shows the marker and watches for it. */
    XImage *XCreateImage(Display *dpy, Visual *visual, unsigned int depth, int format,
                         int offset, char *data, unsigned int width, unsigned int height,
                         int bitmap_pad, int bytes_per_line);
    int XPutImage(Display *dpy, Drawable d, GC gc, XImage *image, int src_x, int src_y,
                  int dest_x, int dest_y, unsigned int width, unsigned int height);
    GC XCreateGC(Display *dpy, Drawable d, unsigned long valuemask, void *values);
    int XFreeGC(Display *dpy, GC gc);
    int XSetForeground(Display *dpy, GC gc, unsigned long pixel);
    int XFillRectangle(Display *dpy, Drawable d, GC gc, int x, int y, unsigned int width,
                       unsigned int height);
    Window XCreateSimpleWindow(Display *dpy, Window parent, int x, int y, unsigned int width,
                               unsigned int height, unsigned int border_width,
                               unsigned long border, unsigned long background);
    int XMapRaised(Display *dpy, Window w);
    int XMapWindow(Display *dpy, Window w);
    int XDestroyWindow(Display *dpy, Window w);
    int XSelectInput(Display *dpy, Window w, long event_mask);
    int XStoreName(Display *dpy, Window w, const char *name);
    Status XSetWMProtocols(Display *dpy, Window w, Atom *protocols, int count);
    int XResizeWindow(Display *dpy, Window w, unsigned int width, unsigned int height);
    int XMoveResizeWindow(Display *dpy, Window w, int x, int y, unsigned int width,
                          unsigned int height);
    int XSetWindowBackgroundPixmap(Display *dpy, Window w, Pixmap background);
    Status XSendEvent(Display *dpy, Window w, Bool propagate, long event_mask, XEvent *event);
    Status XGetGeometry(Display *dpy, Drawable d, Window *root, int *x, int *y,
                        unsigned int *width, unsigned int *height, unsigned int *border,
                        unsigned int *depth);
    int XGetWindowProperty(Display *dpy, Window w, Atom property, long offset, long length,
                           Bool delete, Atom req_type, Atom *actual_type, int *actual_format,
                           unsigned long *nitems, unsigned long *bytes_after,
                           unsigned char **prop);
    int XChangeProperty(Display *dpy, Window w, Atom property, Atom type, int format,
                        int mode, const unsigned char *data, int nelements);
    KeySym XLookupKeysym(XKeyEvent *event, int index);
    char *XKeysymToString(KeySym keysym);

    Bool XQueryExtension(Display *dpy, const char *name, int *major_opcode,
                         int *first_event, int *first_error);

    Bool XShmQueryExtension(Display *dpy);
    XImage *XShmCreateImage(Display *dpy, Visual *visual, unsigned int depth, int format,
                            char *data, XShmSegmentInfo *shminfo, unsigned int width,
                            unsigned int height);
    Bool XShmAttach(Display *dpy, XShmSegmentInfo *shminfo);
    Bool XShmDetach(Display *dpy, XShmSegmentInfo *shminfo);
    Bool XShmPutImage(Display *dpy, Drawable d, GC gc, XImage *image, int src_x, int src_y,
                      int dst_x, int dst_y, unsigned int width, unsigned int height,
                      Bool send_event);
    int XShmGetEventBase(Display *dpy);
    Bool XShmGetImage(Display *dpy, Drawable d, XImage *image, int x, int y,
                      unsigned long plane_mask);

    Bool XDamageQueryExtension(Display *dpy, int *event_base, int *error_base);
    Damage XDamageCreate(Display *dpy, Drawable drawable, int level);
    void XDamageDestroy(Display *dpy, Damage damage);
    void XDamageSubtract(Display *dpy, Damage damage, XserverRegion repair,
                         XserverRegion parts);

    Bool XFixesQueryExtension(Display *dpy, int *event_base, int *error_base);
    XFixesCursorImage *XFixesGetCursorImage(Display *dpy);
    void XFixesSelectCursorInput(Display *dpy, Window window, unsigned long event_mask);

    Status XIQueryVersion(Display *dpy, int *major, int *minor);
    int XISelectEvents(Display *dpy, Window win, XIEventMask *masks, int num_masks);

    XRRMonitorInfo *XRRGetMonitors(Display *dpy, Window window, Bool get_active,
                                   int *nmonitors);
    void XRRFreeMonitors(XRRMonitorInfo *monitors);
    XRRMonitorInfo *XRRAllocateMonitor(Display *dpy, int noutput);
    void XRRSetMonitor(Display *dpy, Window window, XRRMonitorInfo *monitor);

    typedef unsigned char KeyCode;
    int XDisplayKeycodes(Display *display, int *min_keycode, int *max_keycode);
    int XGetPointerMapping(Display *display, unsigned char *map, int nmap);
    KeyCode XKeysymToKeycode(Display *display, KeySym keysym);
    KeySym XStringToKeysym(const char *name);
    KeySym *XGetKeyboardMapping(Display *display, KeyCode first, int count, int *per_keycode);
    int XTestQueryExtension(Display *display, int *event_base, int *error_base,
                            int *major, int *minor);
    int XTestFakeKeyEvent(Display *display, unsigned int keycode, int is_press,
                          unsigned long delay);
    int XTestFakeButtonEvent(Display *display, unsigned int button, int is_press,
                             unsigned long delay);
    int XTestFakeMotionEvent(Display *display, int screen, int x, int y, unsigned long delay);
    int XTestFakeRelativeMotionEvent(Display *display, int dx, int dy, unsigned long delay);

    /* Selections, for the clipboard (rootstream.clipboard.x11). */
    typedef struct {
        int type; unsigned long serial; Bool send_event; Display *display;
        Window owner; Window requestor; Atom selection; Atom target; Atom property; Time time;
    } XSelectionRequestEvent;
    typedef struct {
        int type; unsigned long serial; Bool send_event; Display *display;
        Window requestor; Atom selection; Atom target; Atom property; Time time;
    } XSelectionEvent;
    typedef struct {
        int type; unsigned long serial; Bool send_event; Display *display;
        Window window; int subtype; Window owner; Atom selection; Time timestamp;
        Time selection_timestamp;
    } XFixesSelectionNotifyEvent;
    typedef struct {
        int type; unsigned long serial; Bool send_event; Display *display;
        Window window; Atom atom; Time time; int state;
    } XPropertyEvent;
    int XSetSelectionOwner(Display *dpy, Atom selection, Window owner, Time time);
    int XConvertSelection(Display *dpy, Atom selection, Atom target, Atom property,
                          Window requestor, Time time);
    void XFixesSelectSelectionInput(Display *dpy, Window window, Atom selection,
                                    unsigned long event_mask);

    int shmget(int key, size_t size, int shmflg);
    void *shmat(int shmid, const void *shmaddr, int shmflg);
    int shmdt(const void *shmaddr);
    int shmctl(int shmid, int cmd, void *buf);
    """
)

ZPIXMAP = 2
LSB_FIRST = 0
ALL_PLANES = (1 << (8 * ffi.sizeof("unsigned long"))) - 1  # ~0UL
XDAMAGE_REPORT_BOUNDING_BOX = 2
XDAMAGE_NOTIFY = 0  # added to the extension's event base
IPC_PRIVATE = 0
IPC_CREAT = 0o1000
IPC_RMID = 0
GENERIC_EVENT = 35  # XGenericEventCookie.type, how XInput2 events arrive
XFIXES_CURSOR_NOTIFY = 1  # added to the extension's event base
XFIXES_DISPLAY_CURSOR_NOTIFY_MASK = 1
XI_ALL_MASTER_DEVICES = 1
XI_RAW_MOTION = 17
# Our own window's events (X.h): types, the masks that select them, modifier bits.
KEY_PRESS = 2
KEY_RELEASE = 3
EXPOSE = 12
MAP_NOTIFY = 19
CONFIGURE_NOTIFY = 22
CLIENT_MESSAGE = 33
KEY_PRESS_MASK = 1 << 0
KEY_RELEASE_MASK = 1 << 1
EXPOSURE_MASK = 1 << 15
STRUCTURE_NOTIFY_MASK = 1 << 17
SUBSTRUCTURE_NOTIFY_MASK = 1 << 19
SUBSTRUCTURE_REDIRECT_MASK = 1 << 20
SHIFT_MASK = 1 << 0
CONTROL_MASK = 1 << 2
MOD1_MASK = 1 << 3  # Alt on every common keymap
MOD4_MASK = 1 << 6  # Super
SHM_COMPLETION = 0  # added to XShmGetEventBase()
XA_ATOM = 4
XA_WINDOW = 33
PROP_MODE_REPLACE = 0
MAX_RECORDED_ERRORS = 64  # per display, until take_errors() empties the list


@dataclass(frozen=True)
class Libraries:
    """The opened shared libraries; ``xdamage``/``xrandr`` are None when absent."""

    x11: object
    xext: object
    xdamage: object | None
    xrandr: object | None
    xfixes: object | None
    xi: object | None
    xtst: object | None  # XTEST, for the xtest injector
    libc: object
    missing: tuple[str, ...]  # "libXdamage.so.1: <why>" for each optional library


_lock = threading.Lock()
_libraries: Libraries | None = None
_errors: dict[int, list[str]] = {}  # display address -> recorded X errors
_lost: set[int] = set()  # display addresses whose connection broke
_callbacks: list[object] = []  # keeps the C callbacks alive for the process


def _address(display) -> int:
    return int(ffi.cast("uintptr_t", display))


def _record_error(display, event) -> int:
    # Called by Xlib in the thread that made the failing request; the
    # request is already lost, so recording is all that is left to do.  The
    # handler is process-wide: a display nobody reads the errors of (another
    # module's) must not grow its list without end.
    errors = _errors.setdefault(_address(display), [])
    if len(errors) < MAX_RECORDED_ERRORS:
        errors.append(f"X error {event.error_code} (request {event.request_code}."
                      f"{event.minor_code}, resource 0x{event.resourceid:x})")
    return 0


def _record_io_error(display) -> int:
    _lost.add(_address(display))
    return 0


def _io_exit(display, _data) -> None:
    # Returning (instead of exit()) leaves the Display marked dead: every
    # later request fails at once, which the caller turns into a CaptureError.
    _lost.add(_address(display))


def _open_optional(name: str, missing: list[str]):
    try:
        return ffi.dlopen(name)
    except OSError as exc:
        missing.append(f"{name}: {exc}")
        return None


def load() -> Libraries:
    """Open libX11, libXext (required) and libXdamage, libXrandr, libXfixes, libXi,
    libXtst (optional)."""
    global _libraries
    with _lock:
        if _libraries is not None:
            return _libraries
        try:
            x11 = ffi.dlopen("libX11.so.6")
            xext = ffi.dlopen("libXext.so.6")
        except OSError as exc:
            raise CaptureError(
                "the X11 client libraries are not installed",
                hint="install libx11-6 and libxext6 (apt-get install libx11-6 libxext6)",
                details=[str(exc)],
            ) from exc
        missing: list[str] = []
        xdamage = _open_optional("libXdamage.so.1", missing)
        xrandr = _open_optional("libXrandr.so.2", missing)
        xfixes = _open_optional("libXfixes.so.3", missing)
        xi = _open_optional("libXi.so.6", missing)
        xtst = _open_optional("libXtst.so.6", missing)
        libc = ffi.dlopen(None)
        # No XInitThreads(): libX11 >= 1.8 (Debian 12) makes itself thread-safe
        # when loaded, and calling it after another module used Xlib is unsafe.
        handlers = (
            ffi.callback("XErrorHandler", _record_error),
            ffi.callback("XIOErrorHandler", _record_io_error),
            ffi.callback("XIOErrorExitHandler", _io_exit),
        )
        _callbacks.extend(handlers)
        x11.XSetErrorHandler(handlers[0])
        x11.XSetIOErrorHandler(handlers[1])
        _libraries = Libraries(x11, xext, xdamage, xrandr, xfixes, xi, xtst, libc,
                               tuple(missing))
        return _libraries


def watch(display) -> None:
    """Make a lost connection on ``display`` a recorded flag instead of exit()."""
    load().x11.XSetIOErrorExitHandler(display, _callbacks[2], ffi.NULL)
    forget(display)


def take_errors(display) -> list[str]:
    """The X errors recorded for ``display`` since the last call."""
    return _errors.pop(_address(display), [])


def connection_lost(display) -> bool:
    return _address(display) in _lost


def forget(display) -> None:
    """Drop the records of a display that is being closed (addresses get reused)."""
    address = _address(display)
    _errors.pop(address, None)
    _lost.discard(address)


@dataclass
class ShmImage:
    """A ZPixmap XImage over a SysV segment the X server has attached.

    ``mapping`` is our view of the segment (released when the last object
    made from it is collected); ``pixels`` rows of ``bytes_per_line`` bytes.
    """

    image: object
    shminfo: object
    mapping: object
    pixels: object  # numpy (height, bytes_per_line) uint8 over the mapping


def _detach(address) -> None:
    load().libc.shmdt(address)


def create_shm_image(display, visual, depth: int, width: int, height: int) -> ShmImage | str:
    """A shared-memory image of ``width`` x ``height``, or why there is none.

    The segment is marked for removal as soon as it exists: the kernel frees
    it once both the X server and we let go, however this process ends
    (Linux still lets the server attach a segment marked so).
    """
    libs = load()
    x11, xext, libc = libs.x11, libs.xext, libs.libc
    shminfo = ffi.new("XShmSegmentInfo *")
    image = xext.XShmCreateImage(display, visual, depth, ZPIXMAP, ffi.NULL, shminfo,
                                 width, height)
    if image == ffi.NULL:
        return "XShmCreateImage failed"
    size = image.bytes_per_line * image.height
    shmid = libc.shmget(IPC_PRIVATE, size, IPC_CREAT | 0o600)
    address = ffi.NULL if shmid < 0 else libc.shmat(shmid, ffi.NULL, 0)
    errno = ffi.errno
    if shmid >= 0:
        libc.shmctl(shmid, IPC_RMID, ffi.NULL)
    if address == ffi.NULL or int(ffi.cast("intptr_t", address)) == -1:
        x11.XDestroyImage(image)
        return f"cannot create a shared memory segment ({os.strerror(errno)})"
    mapping = ffi.gc(ffi.cast("char *", address), _detach)
    shminfo.shmid, shminfo.shmaddr, shminfo.readOnly = shmid, mapping, False
    image.data = mapping
    xext.XShmAttach(display, shminfo)
    x11.XSync(display, False)
    errors = take_errors(display)
    if errors:
        image.data = ffi.NULL  # the mapping is ours to release, not Xlib's to free()
        x11.XDestroyImage(image)
        return f"the X server could not attach our shared memory ({errors[0]}; remote display?)"
    pixels = np.frombuffer(ffi.buffer(mapping, size), dtype=np.uint8).reshape(
        image.height, image.bytes_per_line)
    return ShmImage(image, shminfo, mapping, pixels)


@contextlib.contextmanager
def errors_recorded():
    """Our error handler for the requests made inside, whoever replaced it since ``load()``.

    WHY: Xlib's error handler is one per process, and SDL installs its own
    when its video starts and restores the one it found when it stops; that
    may be Xlib's default, which exits the process on the first error.  A
    module that shares the process with SDL wraps its requests that can fail
    (a window that vanished) in this, and XSyncs inside it.
    """
    x11 = load().x11
    previous = x11.XSetErrorHandler(_callbacks[0])
    try:
        yield
    finally:
        x11.XSetErrorHandler(previous)
