"""``auto`` on a machine without a GPU: SDL's renderer is found to draw on the CPU
(Mesa's llvmpipe behind Xvfb's GLX), so the x11 presenter is chosen instead, and
``connect`` says so.  Real Xvfb, real SDL, real Mesa; what a GPU would answer
is checked on the decision itself, with renderer names as drivers report them."""

from __future__ import annotations

import subprocess

import pytest
from session_helpers import listening_pattern_host, rootstream_command

from rootstream._native import xlib
from rootstream.present import open_presenter
from rootstream.present.gl_probe import glx_renderer
from rootstream.present.gl_renderer import SOFTWARE_GL, software_reason
from rootstream.present.sdl import SdlPresenter
from rootstream.present.x11 import X11Presenter


@pytest.mark.parametrize("gl_renderer", [
    "llvmpipe (LLVM 15.0.6, 256 bits)", "softpipe", "Software Rasterizer", "swrast"])
def test_mesas_cpu_rasterisers_are_software(gl_renderer):
    why = software_reason("opengl", gl_renderer)
    assert gl_renderer in why and "software GL renderer" in why


@pytest.mark.parametrize("gl_renderer", [
    "NVIDIA GeForce RTX 3060/PCIe/SSE2", "AMD Radeon RX 6600 (navi23, LLVM 15.0.6, DRM 3.49)",
    "Mesa Intel(R) UHD Graphics 620 (KBL GT2)", "virgl (Intel(R) UHD Graphics)"])
def test_a_real_gpu_keeps_sdl(gl_renderer):
    assert software_reason("opengl", gl_renderer) == ""
    assert software_reason("opengles2", gl_renderer) == ""


def test_sdls_own_software_renderer_is_software():
    assert software_reason("software", "") == "SDL's renderer is its own software renderer"


def test_sdl_on_xvfb_names_its_gl_renderer(xvfb, monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb.display)
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    presenter = SdlPresenter(width=320, height=180)
    try:
        assert presenter.renderer_name.startswith("opengl")
        # Xvfb's GLX is always Mesa on the CPU: whichever rasteriser, it must be named.
        assert any(name in presenter.gl_renderer.lower() for name in SOFTWARE_GL), \
            presenter.gl_renderer
        assert presenter.gl_renderer in presenter.software_reason
    finally:
        presenter.close()


def test_auto_on_xvfb_chooses_x11_and_says_why(xvfb, monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb.display)
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    with open_presenter("auto", width=320, height=180) as presenter:
        assert isinstance(presenter, X11Presenter)
        assert "software GL renderer" in presenter.chosen_because
        assert "x11 presenter" in presenter.chosen_because
        assert [(p.name, p.ok) for p in presenter.fallbacks] == [("sdl", False)]


def test_auto_learns_the_renderer_without_an_sdl_window(xvfb, monkeypatch):
    """GLX is asked on a hidden pbuffer: the only window made is the x11 presenter's
    (SDL's video start alone makes a hidden helper window, its renderer a real one)."""
    monkeypatch.setenv("DISPLAY", xvfb.display)
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    assert "llvmpipe" in glx_renderer(xvfb.display)
    with WindowsMade(xvfb.display) as made:
        with open_presenter("auto", width=320, height=180) as presenter:
            assert presenter.name == "x11"
            assert "software GL renderer" in presenter.chosen_because
        assert made.count() == 1


def test_where_glx_cannot_tell_sdl_is_still_asked(xvfb, monkeypatch):
    """A render driver the probe does not answer for: SDL's window is opened and asked."""
    monkeypatch.setenv("DISPLAY", xvfb.display)
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    monkeypatch.setenv("SDL_RENDER_DRIVER", "opengles2")
    with WindowsMade(xvfb.display) as made:
        with open_presenter("auto", width=320, height=180) as presenter:
            assert presenter.name == "x11"
            assert "opengles2 renderer runs on" in presenter.chosen_because
        assert made.count() > 1


class WindowsMade:
    """Counts the windows created on a display (CreateNotify on the root window)."""

    def __init__(self, display: str):
        self._x11 = xlib.load().x11
        self._display = self._x11.XOpenDisplay(display.encode())
        assert self._display != xlib.ffi.NULL
        root = self._x11.XRootWindow(self._display, self._x11.XDefaultScreen(self._display))
        self._x11.XSelectInput(self._display, root, xlib.SUBSTRUCTURE_NOTIFY_MASK)
        self._x11.XSync(self._display, False)

    def count(self) -> int:
        self._x11.XSync(self._display, False)
        event, made = xlib.ffi.new("XEvent *"), 0
        while self._x11.XPending(self._display):
            self._x11.XNextEvent(self._display, event)
            made += event.type == 16  # CreateNotify
        return made

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._x11.XCloseDisplay(self._display)


def test_sdls_software_renderer_also_gives_way_to_x11(xvfb, monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb.display)
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    monkeypatch.setenv("SDL_RENDER_DRIVER", "software")
    with open_presenter("auto", width=320, height=180) as presenter:
        assert presenter.name == "x11"
        assert "own software renderer" in presenter.chosen_because


def test_sdl_named_is_sdl_even_on_software_gl(xvfb, monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb.display)
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    with open_presenter("sdl", width=320, height=180) as presenter:
        assert presenter.name == "sdl"
        assert presenter.chosen_because == ""


def test_connect_prints_the_presenter_auto_chose(xvfb, tmp_path, udp_port):
    with listening_pattern_host(udp_port, tmp_path):
        client = subprocess.run(
            rootstream_command("connect", f"127.0.0.1:{udp_port}", "--frames", "10"),
            env=xvfb.env(SDL_VIDEODRIVER="x11"), capture_output=True, text=True, timeout=60)
    assert client.returncode == 0, client.stderr
    assert "showing with x11" in client.stderr
    assert "presenter x11 (auto): SDL's opengl renderer runs on" in client.stderr
    assert "10 frames shown" in client.stdout + client.stderr
