"""Input: the client's SDL capture and the host's injectors.

``open_injector(name, **opts)`` opens one host backend:

- ``uinput``: virtual keyboard, mouse, pointer and gamepads through
  /dev/uinput (python-uinput); what games see as real devices.
- ``xtest``: the X server's XTEST extension, for hosts without /dev/uinput;
  keyboard and mouse only.
- ``record``: keeps the events, for tests.
- ``auto``: uinput, then xtest; when neither opens, one InputError whose
  ``details`` say why each failed.

Backends are imported lazily by the registry (rootstream.backends), so a
host without python-uinput or libXtst fails only when that backend is chosen.
The host loop talks to an InputSession wrapped around the injector.
"""

from __future__ import annotations

from rootstream.backends import BackendProbe, BackendRegistry
from rootstream.errors import InputError
from rootstream.input.injector import Injector
from rootstream.input.session import InputSession

# In the order `auto` tries them; record is never automatic.
INJECTORS = BackendRegistry("input injector", {
    "uinput": "rootstream.input.inject_uinput:UinputInjector",
    "xtest": "rootstream.input.inject_xtest:XTestInjector",
    "record": "rootstream.input.inject_record:RecordInjector",
}, InputError, auto=("uinput", "xtest"), noun="input injector")


def open_injector(name: str = "auto", **opts) -> Injector:
    """Open the host input backend ``name``; see the module docstring.

    Options go to the backend: ``open_injector("xtest", display=":1")``.  For
    ``auto`` they are given per backend: ``open_injector("auto", xtest={...})``;
    the opened injector's ``fallbacks`` lists why the ones before it failed.
    """
    if name != "auto":
        try:
            return INJECTORS.open(name, **opts)
        except (OSError, ImportError) as exc:
            raise InputError(f"the {name} injector could not be opened",
                             details=[str(exc)]) from exc
    unknown = set(opts) - set(INJECTORS.auto)
    if unknown:
        raise InputError(f"auto takes options per backend, not {sorted(unknown)}",
                         hint='e.g. open_injector("auto", xtest={"display": ":1"})')
    failures: list[tuple[str, str]] = []
    for candidate in INJECTORS.auto:
        injector, failed = INJECTORS.try_open((candidate,), **opts.get(candidate, {}))
        if injector is not None:
            injector.fallbacks = [f"{n}: {why}" for n, why in failures]
            return injector
        failures += failed
    raise INJECTORS.failed(INJECTORS.auto, failures, message="no input injector could be opened",
                           hint="give the user /dev/uinput (see udev/) or run the host under X")


def probe_injectors(**opts) -> list[BackendProbe]:
    """Try every real backend in `auto` order, for `rootstream doctor`.

    ``opts`` maps a backend name to its options, e.g. ``xtest={"display": ":1"}``.
    """
    return [probe for name in INJECTORS.auto
            for probe in INJECTORS.probe((name,), **opts.get(name, {}))]


__all__ = ["INJECTORS", "Injector", "InputSession", "open_injector", "probe_injectors"]
