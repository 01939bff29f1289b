"""Input: the client's SDL capture and the host's injectors.

``open_injector(name, **opts)`` opens one host backend:

- ``uinput``: virtual keyboard, mouse, pointer and gamepads through
  /dev/uinput (python-uinput); what games see as real devices.
- ``xtest``: the X server's XTEST extension, for hosts without /dev/uinput;
  keyboard and mouse only.
- ``record``: keeps the events, for tests.
- ``auto``: uinput, then xtest; when neither opens, one InputError whose
  ``details`` say why each failed.

Backends are imported inside the factory, so a host without python-uinput or
libXtst fails only when that backend is chosen.  The host loop talks to an
InputSession wrapped around the injector.
"""

from __future__ import annotations

from rootstream.errors import InputError
from rootstream.input.injector import Injector
from rootstream.input.session import InputSession


def _open_uinput(**opts) -> Injector:
    from rootstream.input.inject_uinput import UinputInjector

    return UinputInjector(**opts)


def _open_xtest(**opts) -> Injector:
    from rootstream.input.inject_xtest import XTestInjector

    return XTestInjector(**opts)


def _open_record(**opts) -> Injector:
    from rootstream.input.inject_record import RecordInjector

    return RecordInjector(**opts)


# name -> opener, in the order `auto` tries them (record is never automatic).
_BACKENDS = {"uinput": _open_uinput, "xtest": _open_xtest, "record": _open_record}
_AUTO_ORDER = ("uinput", "xtest")


def _reason(exc: Exception) -> str:
    hint = getattr(exc, "hint", "")
    return f"{exc} ({hint})" if hint else str(exc)


def _try_open(name: str, opts: dict) -> tuple[Injector | None, str]:
    try:
        return _BACKENDS[name](**opts), "ok"
    except (InputError, OSError, ImportError) as exc:
        return None, _reason(exc)


def open_injector(name: str = "auto", **opts) -> Injector:
    """Open the host input backend ``name``; see the module docstring.

    Options go to the backend: ``open_injector("xtest", display=":1")``.  For
    ``auto`` they are given per backend: ``open_injector("auto", xtest={...})``;
    the opened injector's ``fallbacks`` lists why the ones before it failed.
    """
    if name == "auto":
        unknown = set(opts) - set(_AUTO_ORDER)
        if unknown:
            raise InputError(f"auto takes options per backend, not {sorted(unknown)}",
                             hint='e.g. open_injector("auto", xtest={"display": ":1"})')
        failures = []
        for candidate in _AUTO_ORDER:
            injector, reason = _try_open(candidate, opts.get(candidate, {}))
            if injector is not None:
                injector.fallbacks = failures
                return injector
            failures.append(f"{candidate}: {reason}")
        raise InputError("no input injector could be opened",
                         hint="give the user /dev/uinput (see udev/) or run the host under X",
                         details=failures)
    if name not in _BACKENDS:
        raise InputError(f"unknown input injector {name!r}",
                         hint="known injectors: auto, " + ", ".join(_BACKENDS))
    try:
        return _BACKENDS[name](**opts)
    except (OSError, ImportError) as exc:
        raise InputError(f"the {name} injector could not be opened", details=[str(exc)]) from exc


def probe_injectors(**opts) -> list[tuple[str, bool, str]]:
    """Try every real backend in `auto` order: [(name, ok, reason)], for `rootstream doctor`.

    ``opts`` maps a backend name to its options, e.g. ``xtest={"display": ":1"}``.
    """
    results = []
    for name in _AUTO_ORDER:
        injector, reason = _try_open(name, opts.get(name, {}))
        if injector is not None:
            injector.close()
        results.append((name, injector is not None, reason))
    return results


__all__ = ["Injector", "InputSession", "open_injector", "probe_injectors"]
