"""Which GL renderer SDL's default renderer would get on an X display, without a window.

WHY: ``auto`` used to open SDL's window and renderer only to learn that
Mesa's llvmpipe would draw (no GPU), then close it and open the x11
presenter: a window that flashed up and a quarter of a second of start-up
(docs/BENCHMARKS.md).  SDL's default renderer under X11 is ``opengl``
through GLX, so asking GLX the same question gives the same answer: a 1x1
pbuffer (never shown), a context on it, ``glGetString(GL_RENDERER)``, all
released again.  Anything missing (no libGL, no GLX on the server, no
pbuffer config) answers "", and ``auto`` falls back to asking SDL itself.
"""

from __future__ import annotations

from cffi import FFI

from rootstream._native import xlib
from rootstream.errors import CaptureError

_ffi = FFI()
_ffi.cdef("""
typedef struct __GLXFBConfigRec *GLXFBConfig;
typedef struct __GLXcontextRec *GLXContext;
typedef unsigned long XID;
GLXFBConfig *glXChooseFBConfig(void *dpy, int screen, const int *attribs, int *count);
XID glXCreatePbuffer(void *dpy, GLXFBConfig config, const int *attribs);
void glXDestroyPbuffer(void *dpy, XID pbuffer);
GLXContext glXCreateNewContext(void *dpy, GLXFBConfig config, int render_type,
                               GLXContext share, int direct);
void glXDestroyContext(void *dpy, GLXContext context);
int glXMakeContextCurrent(void *dpy, XID draw, XID read, GLXContext context);
int glXQueryExtension(void *dpy, int *error_base, int *event_base);
const unsigned char *glGetString(unsigned int name);
""")

# glx.h / gl.h
_GLX_DRAWABLE_TYPE, _GLX_RENDER_TYPE, _GLX_PBUFFER_BIT, _GLX_RGBA_BIT = 0x8010, 0x8011, 0x4, 0x1
_GLX_PBUFFER_WIDTH, _GLX_PBUFFER_HEIGHT, _GLX_RGBA_TYPE = 0x8041, 0x8040, 0x8014
_GL_RENDERER = 0x1F01

# Mesa's CPU rasterisers, as they appear in GL_RENDERER ("llvmpipe (LLVM 15.0.6,
# 256 bits)", "softpipe", "Software Rasterizer" is swrast's own spelling).
SOFTWARE_GL = ("llvmpipe", "softpipe", "swrast", "software rasterizer")


def software_reason(renderer_name: str, gl_renderer: str) -> str:
    """Why SDL's renderer ``renderer_name`` (on ``gl_renderer``) draws on the CPU; "" if not."""
    if renderer_name == "software":
        return "SDL's renderer is its own software renderer"
    lowered = gl_renderer.lower()
    if any(name in lowered for name in SOFTWARE_GL):
        return f"SDL's {renderer_name} renderer runs on {gl_renderer}, a software GL renderer"
    return ""


def glx_renderer(display_name: str) -> str:
    """GL_RENDERER of a GLX context on ``display_name``'s default screen; "" when
    GLX cannot answer.  Nothing is mapped; the context is gone on return."""
    try:
        libs = xlib.load()
        gl = _ffi.dlopen("libGL.so.1")
    except (OSError, CaptureError):
        return ""
    x11 = libs.x11
    connection = x11.XOpenDisplay(display_name.encode())
    if connection == xlib.ffi.NULL:
        return ""
    xlib.watch(connection)
    display = _ffi.cast("void *", int(xlib.ffi.cast("uintptr_t", connection)))
    try:
        with xlib.errors_recorded():
            name = _ask(gl, display, x11.XDefaultScreen(connection), x11.XFree)
            x11.XSync(connection, False)
        return "" if xlib.take_errors(connection) else name
    finally:
        x11.XCloseDisplay(connection)
        xlib.forget(connection)


def _ask(gl, display, screen: int, x_free) -> str:
    unused = _ffi.new("int *")
    if not gl.glXQueryExtension(display, unused, unused):
        return ""
    count = _ffi.new("int *")
    attribs = _ffi.new("int[]", [_GLX_DRAWABLE_TYPE, _GLX_PBUFFER_BIT,
                                 _GLX_RENDER_TYPE, _GLX_RGBA_BIT, 0])
    configs = gl.glXChooseFBConfig(display, screen, attribs, count)
    if configs == _ffi.NULL:
        return ""
    try:
        if count[0] < 1:
            return ""
        size = _ffi.new("int[]", [_GLX_PBUFFER_WIDTH, 1, _GLX_PBUFFER_HEIGHT, 1, 0])
        pbuffer = gl.glXCreatePbuffer(display, configs[0], size)
        if not pbuffer:
            return ""
        context = gl.glXCreateNewContext(display, configs[0], _GLX_RGBA_TYPE, _ffi.NULL, True)
        try:
            if context == _ffi.NULL or not gl.glXMakeContextCurrent(display, pbuffer, pbuffer,
                                                                    context):
                return ""
            name = gl.glGetString(_GL_RENDERER)
            gl.glXMakeContextCurrent(display, 0, 0, _ffi.NULL)
            return _ffi.string(name).decode(errors="replace") if name != _ffi.NULL else ""
        finally:
            if context != _ffi.NULL:
                gl.glXDestroyContext(display, context)
            gl.glXDestroyPbuffer(display, pbuffer)
    finally:
        x_free(xlib.ffi.cast("void *", int(_ffi.cast("uintptr_t", configs))))


__all__ = ["SOFTWARE_GL", "glx_renderer", "software_reason"]
