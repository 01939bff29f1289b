"""The SDL2 presenter: a resizable window with a YUV streaming texture.

Decoded planes go to SDL straight from PyAV's buffers (SDL_UpdateNVTexture for
NV12, SDL_UpdateYUVTexture for yuv420p, given pointers into the frame): no
copy or conversion in Python; the renderer turns YUV into RGB (on the GPU when
it has one), as BT.709 limited range, which is what the host encodes.

Threading: SDL's video and event functions must run on the thread that
initialised them, so every method of this presenter must be called from the
thread that opened it; another thread gets a PresentError instead of a
crash deep inside X11.

The video driver is SDL's choice (x11 under a DISPLAY, wayland, kmsdrm, or
whatever SDL_VIDEODRIVER names, e.g. ``dummy`` for headless tests).
Vsync is off unless asked for: tearing costs less than waiting up to a
refresh for every frame.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time

import av
import numpy as np
import sdl2

from rootstream.errors import PresentError
from rootstream.present.base import Presenter, PresenterEvent, Rect, letterbox
from rootstream.present.gl_renderer import current_gl_renderer, software_reason

# SDL_YUV_CONVERSION_MODE value (SDL_pixels.h: JPEG 0, BT601 1, BT709 2);
# pysdl2 does not export the enum.
_SDL_YUV_CONVERSION_BT709 = 2

_UBYTE_P = ctypes.POINTER(ctypes.c_ubyte)

# decoder pixel format -> SDL texture format
_TEXTURE_FORMATS = {
    "nv12": sdl2.SDL_PIXELFORMAT_NV12,
    "yuv420p": sdl2.SDL_PIXELFORMAT_IYUV,
}


def _sdl_error() -> str:
    return sdl2.SDL_GetError().decode(errors="replace") or "no SDL error text"


def _plane_pointer(plane) -> ctypes.POINTER(ctypes.c_ubyte):
    return ctypes.cast(ctypes.c_void_p(plane.buffer_ptr), _UBYTE_P)


class SdlPresenter(Presenter):
    """Options: ``renderer`` (an SDL render driver name: "software", "opengl",
    ...; default SDL's choice), ``window_size`` ((w, h), default the stream
    size)."""

    name = "sdl"

    def __init__(self, *, width: int, height: int, title: str = "rootstream",
                 fullscreen: bool = False, vsync: bool = False, renderer: str | None = None,
                 window_size: tuple[int, int] | None = None):
        super().__init__(width=width, height=height)
        self._thread = threading.get_ident()
        self._window = self._renderer = self._texture = None
        self._texture_key: tuple[str, int, int] | None = None
        self._event = sdl2.SDL_Event()
        self.conversions = 0  # frames that arrived in a format SDL cannot take directly
        self._overlay = None  # TextOverlay, made on first use
        self._overlay_lines: tuple[str, ...] = ()
        self._overlay_drawn: tuple[str, ...] = ()
        self._video_initialised = False
        _set_hints(vsync, renderer)
        if sdl2.SDL_InitSubSystem(sdl2.SDL_INIT_VIDEO) != 0:
            raise PresentError(
                "no SDL video driver works here",
                hint="run with --present null, or inside a desktop session (DISPLAY)",
                details=[_sdl_error()],
            )
        self._video_initialised = True
        headless = _headless_driver()
        if headless:
            self.close()
            raise PresentError(
                "no display to open a window on",
                hint="run with --present null, or inside a desktop session (DISPLAY)",
                details=[f"SDL found only its {headless} video driver, which shows nothing"],
            )
        try:
            self._open_window(title, window_size or (width, height), fullscreen, vsync)
        except BaseException:
            self.close()
            raise

    @classmethod
    def probe(cls) -> str:
        """Empty if an SDL video driver initialises here, else why not."""
        sdl2.SDL_SetHint(sdl2.SDL_HINT_NO_SIGNAL_HANDLERS, b"1")
        if sdl2.SDL_InitSubSystem(sdl2.SDL_INIT_VIDEO) != 0:
            return f"no SDL video driver works here: {_sdl_error()}"
        headless = _headless_driver()
        sdl2.SDL_QuitSubSystem(sdl2.SDL_INIT_VIDEO)
        return f"no display: SDL found only its {headless} video driver" if headless else ""

    def _open_window(self, title, size, fullscreen, vsync) -> None:
        flags = sdl2.SDL_WINDOW_RESIZABLE | sdl2.SDL_WINDOW_ALLOW_HIGHDPI
        if fullscreen:
            flags |= sdl2.SDL_WINDOW_FULLSCREEN_DESKTOP
        pos = sdl2.SDL_WINDOWPOS_CENTERED
        self._window = sdl2.SDL_CreateWindow(title.encode(), pos, pos, size[0], size[1], flags)
        if not self._window:
            raise PresentError("SDL could not create a window", details=[_sdl_error()])
        render_flags = sdl2.SDL_RENDERER_PRESENTVSYNC if vsync else 0
        self._renderer = sdl2.SDL_CreateRenderer(self._window, -1, render_flags)
        if not self._renderer:
            raise PresentError("SDL could not create a renderer", details=[_sdl_error()])
        info = sdl2.SDL_RendererInfo()
        sdl2.SDL_GetRendererInfo(self._renderer, ctypes.byref(info))
        self.renderer_name = info.name.decode()
        self.video_driver = sdl2.SDL_GetCurrentVideoDriver().decode()
        # GL's own name for what draws (llvmpipe on a machine without a GPU):
        # ``auto`` passes over this presenter when it draws on the CPU.
        self.gl_renderer = current_gl_renderer() if self.renderer_name.startswith("opengl") \
            else ""
        self.software_reason = software_reason(self.renderer_name, self.gl_renderer)

    # -- drawing -------------------------------------------------------------

    def _check_thread(self) -> None:
        if threading.get_ident() != self._thread:
            raise PresentError("the SDL presenter was used from a thread that did not open it")
        if not self._renderer:
            raise PresentError("the SDL presenter is closed")

    def present(self, frame: av.VideoFrame) -> int:
        self._check_thread()
        if frame.format.name not in _TEXTURE_FORMATS:
            frame = frame.reformat(format="yuv420p")  # e.g. yuvj420p from a foreign stream
            self.conversions += 1
        self._upload(frame)  # SDL copies the planes: the frame may go right after
        self._draw()
        sdl2.SDL_RenderPresent(self._renderer)
        self.frames_presented += 1
        return time.monotonic_ns()

    def _upload(self, frame: av.VideoFrame) -> None:
        key = (frame.format.name, frame.width, frame.height)
        if key != self._texture_key:  # first frame, or the stream changed size
            if self._texture:
                sdl2.SDL_DestroyTexture(self._texture)
                self._texture = None
            self._texture = sdl2.SDL_CreateTexture(
                self._renderer, _TEXTURE_FORMATS[key[0]], sdl2.SDL_TEXTUREACCESS_STREAMING,
                frame.width, frame.height)
            if not self._texture:
                self._texture_key = None
                raise PresentError("SDL could not create the video texture",
                                   details=[f"{key[0]} {key[1]}x{key[2]}: {_sdl_error()}"])
            self._texture_key = key
            self.width, self.height = frame.width, frame.height
        planes = frame.planes
        if key[0] == "nv12":
            result = sdl2.SDL_UpdateNVTexture(
                self._texture, None,
                _plane_pointer(planes[0]), planes[0].line_size,
                _plane_pointer(planes[1]), planes[1].line_size)
        else:
            result = sdl2.SDL_UpdateYUVTexture(
                self._texture, None,
                _plane_pointer(planes[0]), planes[0].line_size,
                _plane_pointer(planes[1]), planes[1].line_size,
                _plane_pointer(planes[2]), planes[2].line_size)
        if result != 0:
            raise PresentError("SDL could not update the video texture", details=[_sdl_error()])

    def _output_size(self) -> tuple[int, int]:
        w, h = ctypes.c_int(), ctypes.c_int()
        sdl2.SDL_GetRendererOutputSize(self._renderer, ctypes.byref(w), ctypes.byref(h))
        return w.value, h.value

    def _draw(self) -> None:
        sdl2.SDL_SetRenderDrawColor(self._renderer, 0, 0, 0, 255)
        sdl2.SDL_RenderClear(self._renderer)
        if self._texture:
            box = letterbox(self.width, self.height, *self._output_size())
            sdl2.SDL_RenderCopy(self._renderer, self._texture, None, sdl2.SDL_Rect(*box))
        lines = self._overlay_lines
        if lines:
            self._text_overlay().draw(lines)
        self._overlay_drawn = lines

    # -- the stats overlay ------------------------------------------------------

    def set_overlay(self, lines: list[str] | None) -> None:
        """Text over the picture's top-left corner from the next draw; None hides it.

        Safe from any thread: it only stores the lines; drawing happens on
        the presenter's thread (with the next frame, or at the next
        ``poll_events`` when the picture is still).
        """
        self._overlay_lines = tuple(lines or ())

    def overlay_problem(self) -> str:
        """Empty when the overlay can draw text here, else why not."""
        self._check_thread()
        return self._text_overlay().problem()

    def _text_overlay(self):
        if self._overlay is None:
            from rootstream.present.overlay import TextOverlay

            self._overlay = TextOverlay(self._renderer)
        return self._overlay

    def output_rect(self) -> Rect:
        """Where the picture is drawn, in renderer (pixel) coordinates."""
        return letterbox(self.width, self.height, *self._output_size())

    def read_pixels(self) -> np.ndarray:
        """Redraw the current picture and read the renderer's output back.

        Redrawing first because a back buffer's content after a present is
        undefined in SDL; the result is exactly what the last present showed
        (scaled to the window's current size).
        """
        self._check_thread()
        self._draw()
        w, h = self._output_size()
        pixels = np.empty((h, w, 4), np.uint8)
        # XRGB8888 is B, G, R, X in memory on little-endian machines: BGRX.
        if sdl2.SDL_RenderReadPixels(self._renderer, None, sdl2.SDL_PIXELFORMAT_XRGB8888,
                                     pixels.ctypes.data_as(ctypes.c_void_p), w * 4) != 0:
            raise PresentError("SDL could not read the window back", details=[_sdl_error()])
        sdl2.SDL_RenderPresent(self._renderer)
        return pixels

    # -- window and events ----------------------------------------------------

    def poll_events(self) -> list[PresenterEvent]:
        self._check_thread()
        events: list[PresenterEvent] = []
        event = self._event
        quit_seen = False
        if self._overlay_lines != self._overlay_drawn and self._texture:
            # A still stream brings no frame to draw a shown/hidden overlay with.
            self._draw()
            sdl2.SDL_RenderPresent(self._renderer)
        while sdl2.SDL_PollEvent(ctypes.byref(event)):
            for listener in self._listeners:
                listener(event)
            kind = event.type
            window_event = event.window.event if kind == sdl2.SDL_WINDOWEVENT else None
            if kind == sdl2.SDL_QUIT or window_event == sdl2.SDL_WINDOWEVENT_CLOSE:
                # Closing the last window sends both; the loop needs one.
                if not quit_seen:
                    events.append(PresenterEvent("quit"))
                    quit_seen = True
            elif window_event == sdl2.SDL_WINDOWEVENT_SIZE_CHANGED:
                events.append(PresenterEvent("resized", width=event.window.data1,
                                             height=event.window.data2))
            elif kind in (sdl2.SDL_KEYDOWN, sdl2.SDL_KEYUP):
                keysym = event.key.keysym
                events.append(PresenterEvent(
                    "key", key=sdl2.SDL_GetKeyName(keysym.sym).decode(errors="replace"),
                    pressed=kind == sdl2.SDL_KEYDOWN, repeat=bool(event.key.repeat),
                    modifiers=int(keysym.mod), scancode=int(keysym.scancode)))
        return events

    def toggle_fullscreen(self) -> bool:
        self._check_thread()
        now = bool(sdl2.SDL_GetWindowFlags(self._window) & sdl2.SDL_WINDOW_FULLSCREEN)
        mode = 0 if now else sdl2.SDL_WINDOW_FULLSCREEN_DESKTOP
        if sdl2.SDL_SetWindowFullscreen(self._window, mode) != 0:
            raise PresentError("SDL could not switch fullscreen", details=[_sdl_error()])
        return not now

    def window_size(self) -> tuple[int, int]:
        self._check_thread()
        w, h = ctypes.c_int(), ctypes.c_int()
        sdl2.SDL_GetWindowSize(self._window, ctypes.byref(w), ctypes.byref(h))
        return w.value, h.value

    def set_window_size(self, width: int, height: int) -> None:
        self._check_thread()
        sdl2.SDL_SetWindowSize(self._window, width, height)

    @property
    def x11_window(self) -> int | None:
        """The X11 window id (for input tools and tests), None on other drivers."""
        info = sdl2.SDL_SysWMinfo()
        sdl2.SDL_VERSION(info.version)
        if not sdl2.SDL_GetWindowWMInfo(self._window, ctypes.byref(info)):
            return None
        if info.subsystem != sdl2.SDL_SYSWM_X11:
            return None
        return int(info.info.x11.window)

    def close(self) -> None:
        if self._overlay is not None:
            self._overlay.close()
            self._overlay = None
        if self._texture:
            sdl2.SDL_DestroyTexture(self._texture)
        if self._renderer:
            sdl2.SDL_DestroyRenderer(self._renderer)
        if self._window:
            sdl2.SDL_DestroyWindow(self._window)
        self._texture = self._renderer = self._window = None
        if self._video_initialised:
            self._video_initialised = False
            sdl2.SDL_QuitSubSystem(sdl2.SDL_INIT_VIDEO)


def _headless_driver() -> str:
    """The driver's name if SDL fell back to one that shows nothing on its
    own (no display server); empty if a real one, or one asked for by name
    through SDL_VIDEODRIVER (tests use ``dummy``)."""
    driver = (sdl2.SDL_GetCurrentVideoDriver() or b"").decode()
    asked = os.environ.get("SDL_VIDEODRIVER", "").lower().split(",")
    if driver in ("offscreen", "dummy", "evdev") and driver not in asked:
        return driver
    return ""


def _set_hints(vsync: bool, renderer: str | None) -> None:
    # Python keeps SIGINT/SIGTERM: SDL turning them into quit events would
    # hide Ctrl-C from a client that is not polling.
    sdl2.SDL_SetHint(sdl2.SDL_HINT_NO_SIGNAL_HANDLERS, b"1")
    sdl2.SDL_SetHint(sdl2.SDL_HINT_RENDER_VSYNC, b"1" if vsync else b"0")
    sdl2.SDL_SetHint(sdl2.SDL_HINT_RENDER_SCALE_QUALITY, b"linear")
    # A streamed game must not minimise when another window takes focus.
    sdl2.SDL_SetHint(sdl2.SDL_HINT_VIDEO_MINIMIZE_ON_FOCUS_LOSS, b"0")
    if renderer:
        sdl2.SDL_SetHint(sdl2.SDL_HINT_RENDER_DRIVER, renderer.encode())
    else:
        sdl2.SDL_ResetHint(sdl2.SDL_HINT_RENDER_DRIVER)
    sdl2.SDL_SetYUVConversionMode(_SDL_YUV_CONVERSION_BT709)
