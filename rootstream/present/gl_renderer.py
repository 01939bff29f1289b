"""Whether SDL's renderer draws on a GPU or on the CPU through a software GL.

On a machine without a GPU (a VM, Xvfb, a remote X server) SDL's choice of
renderer is still OpenGL, and Mesa answers it with a rasteriser that runs on
the CPU: llvmpipe, softpipe or swrast.  Every frame then goes YUV → RGB,
scaled and blended on the CPU at several times the cost of the x11
presenter's swscale + MIT-SHM path (docs/BENCHMARKS.md: 720p, 8-11 ms a
frame against about 2 ms), and on two cores that wait is glass-to-glass
latency.  ``auto`` asks this module which case it is in.

The GL renderer's name is GL_RENDERER of the context SDL's renderer made
current on the presenter's thread, read through SDL_GL_GetProcAddress, so no
second window or context is made to find out.  ``auto`` asks GLX first,
without any window (rootstream.present.gl_probe), and opens SDL only when
that cannot tell.
"""

from __future__ import annotations

import ctypes

import sdl2

from rootstream.present.gl_probe import SOFTWARE_GL, software_reason

_GL_RENDERER = 0x1F01
_GET_STRING = ctypes.CFUNCTYPE(ctypes.c_char_p, ctypes.c_uint)


def current_gl_renderer() -> str:
    """GL_RENDERER of the OpenGL context current on this thread; "" when there is none."""
    address = sdl2.SDL_GL_GetProcAddress(b"glGetString")
    if not address or not sdl2.SDL_GL_GetCurrentContext():
        return ""
    name = _GET_STRING(address)(_GL_RENDERER)
    return name.decode(errors="replace") if name else ""


__all__ = ["SOFTWARE_GL", "current_gl_renderer", "software_reason"]
