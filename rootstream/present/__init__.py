"""Presenters: where decoded pictures become light.

``open_presenter(name, ...)`` picks a backend; each is imported only when
chosen, so a missing SDL library fails only for ``sdl``.

``auto`` tries ``sdl`` (a window under X11/Wayland, or whatever
SDL_VIDEODRIVER names), then ``kms`` (straight to the display, for a client
booted without a desktop: SDL gets no display server there).  ``null`` is
never chosen by ``auto``: a client that silently shows nothing would look like
a network fault; ask for it with ``--present null``.

``x11`` (Xlib + MIT-SHM, swscale on the CPU) is never chosen by ``auto``
either, though without a GPU it presents a 720p frame several times faster
than SDL (docs/BENCHMARKS.md): its window's keyboard and mouse reach the
host (rootstream.input.x11_capture), but no gamepads and no pointer capture,
so ``auto`` picking it would quietly take those from a game client.  Ask for
it with ``--present x11`` on a machine without a GPU, or to watch.
"""

from __future__ import annotations

from rootstream.backends import EXPECTED_FAILURES, BackendProbe, BackendRegistry, accepted_options
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
    presenter, failures = PRESENT.try_open(AUTO_ORDER, **common)
    if presenter is None:
        raise PRESENT.failed(AUTO_ORDER, failures, hint=HINT)
    presenter.fallbacks = [BackendProbe(n, False, why) for n, why in failures]
    return presenter


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
