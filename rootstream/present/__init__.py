"""Presenters: where decoded pictures become light.

``open_presenter(name, ...)`` picks a backend; each is imported only when
chosen, so a missing SDL library fails only for ``sdl``.

``auto`` tries ``sdl`` (a window under X11/Wayland, or whatever
SDL_VIDEODRIVER names), then ``kms`` (straight to the display, for a client
booted without a desktop: SDL gets no display server there).  When SDL's
renderer draws on the CPU (Mesa's llvmpipe, softpipe or swrast under its
OpenGL renderer, or SDL's own software renderer: rootstream.present.gl_renderer)
and an X server is there, ``auto`` opens ``x11``
instead (Xlib + MIT-SHM, swscale on the CPU): without a GPU it presents a
720p frame several times faster (docs/BENCHMARKS.md), and its window's
keyboard and mouse reach the host through the X11 input reader
(rootstream.input.x11_capture).  Where the GPU is real, SDL's accelerated
renderer stays.  In SDL's usual case (its x11 driver, its default opengl
renderer) the question is put to GLX on a hidden pbuffer before any SDL
window exists (rootstream.present.gl_probe); otherwise SDL's window is
opened, asked, and closed again.  ``presenter.chosen_because`` says why
``auto`` chose it, and ``connect`` prints it.

``null`` is never chosen by ``auto``: a client that silently shows nothing
would look like a network fault; ask for it with ``--present null``.
"""

from __future__ import annotations

import os

from rootstream.backends import (
    EXPECTED_FAILURES,
    BackendProbe,
    BackendRegistry,
    accepted_options,
    describe_failure,
)
from rootstream.errors import PresentError
from rootstream.present.base import Presenter, PresenterEvent, Rect, letterbox, map_to_stream

__all__ = [
    "AUTO_ORDER",
    "PRESENT",
    "PRESENTERS",
    "Presenter",
    "PresenterEvent",
    "Rect",
    "letterbox",
    "map_to_stream",
    "open_presenter",
    "probe_presenters",
]

# name -> "module:Class"; the one place a presenter backend is listed.
PRESENTERS = {
    "sdl": "rootstream.present.sdl:SdlPresenter",
    "kms": "rootstream.present.kms:KmsPresenter",
    "null": "rootstream.present.null:NullPresenter",
    "x11": "rootstream.present.x11:X11Presenter",
}
AUTO_ORDER = ("sdl", "kms")
HINT = "run with --present null"

PRESENT = BackendRegistry("presenter", PRESENTERS, PresentError, auto=AUTO_ORDER)


def _load(name: str) -> type[Presenter]:
    try:
        return PRESENT.load(name)
    except (ImportError, AttributeError, OSError) as exc:
        # OSError: pysdl2 raises it when no SDL2 library can be loaded.
        raise PresentError(f"the {name} presenter is not available", hint=HINT,
                           details=[f"{type(exc).__name__}: {exc}"]) from exc


def open_presenter(name: str = "auto", *, width: int, height: int, title: str = "rootstream",
                   fullscreen: bool = False, vsync: bool = False, **opts) -> Presenter:
    """Open a presenter by name, or the first of ``AUTO_ORDER`` that opens.

    Each backend gets the options its constructor takes (``title`` means
    nothing to ``kms``), e.g. ``renderer="software"`` or
    ``window_size=(640, 360)`` for ``sdl``.  ``presenter.fallbacks`` lists
    what ``auto`` tried first and why it failed.
    """
    common = dict(width=width, height=height, title=title, fullscreen=fullscreen,
                  vsync=vsync, **opts)
    if name != "auto":
        cls = _load(name)
        return cls(**accepted_options(cls, common))
    # Without a GPU, learn it before any SDL window exists (none flashes up).
    x11_failed: list[BackendProbe] = []
    why = _software_gl_without_a_window(opts.get("renderer"))
    if why:
        x11 = _open_x11(why, common, x11_failed)
        if x11 is not None:
            x11.fallbacks = [BackendProbe("sdl", False, why)]
            return x11
    presenter, failures = PRESENT.try_open(AUTO_ORDER, **common)
    if presenter is None:
        raise PRESENT.failed(AUTO_ORDER, failures, hint=HINT)
    fallbacks = [BackendProbe(n, False, reason) for n, reason in failures] + x11_failed
    if x11_failed and presenter.name == "sdl":
        presenter.chosen_because = f"{why}, and the x11 presenter failed: " \
                                   f"{x11_failed[0].reason}"
    elif getattr(presenter, "software_reason", ""):
        presenter = _instead_of_software_gl(presenter, common, fallbacks)
    else:
        presenter.chosen_because = _why_chosen(presenter, failures)
    presenter.fallbacks = fallbacks
    return presenter


def _why_chosen(presenter: Presenter, failures: list[tuple[str, str]]) -> str:
    if presenter.name == "sdl":
        gpu = getattr(presenter, "gl_renderer", "")
        return (f"SDL's {presenter.renderer_name} renderer draws on {gpu or 'the GPU'}")
    return "; ".join(f"{name}: {why}" for name, why in failures) or "the first that opened"


def _instead_of_software_gl(sdl: Presenter, common: dict,
                            fallbacks: list[BackendProbe]) -> Presenter:
    """SDL draws on the CPU here: the x11 presenter instead, where an X server is there."""
    why = sdl.software_reason
    if sdl.video_driver != "x11" or not os.environ.get("DISPLAY"):
        # Wayland, kmsdrm, or a driver asked for by name (tests' ``dummy``): the x11
        # presenter would show elsewhere, or not at all.
        sdl.chosen_because = f"{why}, but SDL shows through its {sdl.video_driver} driver, " \
                             "not on an X server the x11 presenter could use"
        return sdl
    sdl.close()  # first: the x11 presenter's window replaces this one, never beside it
    x11 = _open_x11(why, common, fallbacks)
    if x11 is not None:
        fallbacks.append(BackendProbe("sdl", False, why))
        return x11
    cls = _load("sdl")
    sdl = cls(**accepted_options(cls, common))
    sdl.chosen_because = f"{why}, and the x11 presenter failed: {fallbacks[-1].reason}"
    return sdl


def _open_x11(why: str, common: dict, fallbacks: list[BackendProbe]) -> Presenter | None:
    """The x11 presenter in SDL's place, or None with its failure added to ``fallbacks``."""
    try:
        cls = _load("x11")
        x11 = cls(**accepted_options(cls, common))
    except EXPECTED_FAILURES as exc:
        fallbacks.append(BackendProbe("x11", False, describe_failure(exc)))
        return None
    x11.chosen_because = f"{why}; the x11 presenter (MIT-SHM) draws without it"
    return x11


def _software_gl_without_a_window(renderer: str | None) -> str:
    """Why SDL would draw on the CPU here, learnt without opening its window; "" when
    that cannot be told so (SDL is then opened and asked, as before).

    Only SDL's usual case is answered: its x11 video driver with its default
    ``opengl`` renderer (GLX, asked through a hidden pbuffer) or its own
    software renderer asked for by name.
    """
    display = os.environ.get("DISPLAY", "")
    if not display or os.environ.get("SDL_VIDEODRIVER", "x11") != "x11":
        return ""
    asked = renderer or os.environ.get("SDL_RENDER_DRIVER", "")
    from rootstream.present.gl_probe import glx_renderer, software_reason

    if asked == "software":
        return software_reason("software", "")
    if asked not in ("", "opengl"):
        return ""
    return software_reason("opengl", glx_renderer(display))


def probe_presenters() -> list[BackendProbe]:
    """Each presenter and whether it could work here, without showing a window:
    a backend's ``probe()`` classmethod checks what it needs ("" = usable)."""
    results = []
    for name in PRESENTERS:
        try:
            cls = _load(name)
            if hasattr(cls, "probe"):
                reason, found = cls.probe(), "usable"
            else:
                reason, found = "", "its module loads (it has no probe() to check further)"
        except EXPECTED_FAILURES as exc:
            reason = "; ".join([str(exc), *getattr(exc, "details", [])])
        results.append(BackendProbe(name, not reason, reason or found))
    return results
