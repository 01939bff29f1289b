"""One registry shape for every pluggable stage (capture, encode, present, inject).

A stage declares its backends once, as ``name -> "module:Class"`` in the order
``auto`` tries them, and gets from :class:`BackendRegistry`:

- ``open(name, **opts)``: import that one backend lazily and construct it, so a
  missing native library only matters when its backend is chosen;
- ``open_first(names, **opts)``: the first backend that opens, or one error
  whose ``details`` has a line per backend tried and why it failed;
- ``probe(**opts)``: open and close each backend and say how it went, as
  :class:`BackendProbe` records for ``rootstream doctor``.

An unknown name is an error listing the known ones.  Under ``auto``, options
are passed to each backend only if its constructor takes them (``fps=`` goes
to all, ``width=`` only to the test pattern), so one set of options serves
every backend; but a backend that cannot take a *selecting* option that was
given (``output=``, ``display=``) is passed over rather than left to pick
something else.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from .errors import RootStreamError


class BackendProbe(NamedTuple):
    """How opening one backend went: ``reason`` says why not, or what it found.

    A NamedTuple, so every stage's probe has this one shape and still reads as
    the ``(name, ok, reason)`` triple older callers unpack.
    """

    name: str
    ok: bool
    reason: str


# Failures that mean "this backend cannot work here", as opposed to a bug in
# it: our own errors, a module or shared library that cannot be loaded, and a
# device or socket the OS refused.  Anything else propagates.
EXPECTED_FAILURES = (RootStreamError, ImportError, OSError)


def describe_failure(exc: BaseException) -> str:
    """One line for a failed backend, with the hint when there is one."""
    if isinstance(exc, RootStreamError):
        text = str(exc)
        if exc.details:
            text += f" ({'; '.join(exc.details)})"
        return f"{text}; {exc.hint}" if exc.hint else text
    return f"{type(exc).__name__}: {exc}"


class BackendRegistry:
    """Lazily imported backends of one stage, named in ``auto`` order."""

    def __init__(self, kind: str, table: Mapping[str, str], error: type[RootStreamError],
                 selecting: Iterable[str] = (), auto: Iterable[str] | None = None,
                 noun: str = ""):
        self.kind = kind  # "capture", "encoder", ... used in messages
        self.noun = noun or f"{kind} backend"  # what one backend is called
        self.table = dict(table)
        self.error = error
        # What ``auto`` tries, in order: every backend unless some are only
        # ever chosen by name (a test signal, the null presenter).
        self.auto = tuple(self.table if auto is None else auto)
        # Options that choose *what* a backend works on (an output, a device).
        # Under auto, a backend that cannot take one that was given is passed
        # over: quietly dropping output="HDMI-1" would stream another screen.
        self.selecting = frozenset(selecting)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.table)

    def load(self, name: str) -> type:
        """The backend class for ``name``; imports its module on first use."""
        try:
            target = self.table[name]
        except KeyError:
            known = ", ".join(self.names)
            raise self.error(
                f"unknown {self.noun} {name!r}",
                hint=f"choose one of: auto, {known}",
                details=[f"known {self.kind} backends: {known}"],
            ) from None
        module_name, _, class_name = target.partition(":")
        return getattr(importlib.import_module(module_name), class_name)

    def open(self, name: str = "auto", **opts: Any):
        """Construct backend ``name`` with ``opts``; ``auto`` means :meth:`open_first`.

        A backend chosen by name must take every option given a value: asking
        the test pattern for ``region=`` is a mistake worth saying.
        """
        if name == "auto":
            return self.open_first(self.auto, **opts)
        backend_class = self.load(name)
        accepted = accepted_options(backend_class, opts)
        refused = sorted(key for key, value in opts.items()
                         if key not in accepted and value is not None)
        if refused:
            raise self.error(
                f"the {name} {self.kind} backend does not take {', '.join(refused)}",
                hint=f"drop {', '.join(refused)} or choose another {self.kind} backend",
            )
        return backend_class(**accepted)

    def try_open(self, names: Iterable[str], **opts: Any) -> tuple[Any, list[tuple[str, str]]]:
        """(the first backend that opens or None, (name, why) for each that failed)."""
        failures: list[tuple[str, str]] = []
        for name in names:
            try:
                backend_class = self.load(name)
                accepted = accepted_options(backend_class, opts)
                unmet = sorted(key for key in self.selecting
                               if opts.get(key) is not None and key not in accepted)
                if unmet:
                    failures.append((name, f"passed over: it does not take {', '.join(unmet)}"))
                    continue
                return backend_class(**accepted), failures
            except EXPECTED_FAILURES as exc:
                failures.append((name, describe_failure(exc)))
        return None, failures

    def open_first(self, names: Iterable[str], **opts: Any):
        names = tuple(names)
        backend, failures = self.try_open(names, **opts)
        if backend is None:
            raise self.failed(names, failures)
        return backend

    def failed(self, names: Iterable[str], failures: Iterable[tuple[str, str]],
               hint: str = "", message: str = "") -> RootStreamError:
        """The one error for "none of ``names`` opened", a details line per failure."""
        return self.error(
            message or f"no {self.kind} backend could be opened (tried {', '.join(names)})",
            hint=hint or f"fix one of the reasons below, or choose a {self.kind} backend by name",
            details=[f"{name}: {why}" for name, why in failures],
        )

    def probe(self, names: Iterable[str] | None = None, **opts: Any) -> list[BackendProbe]:
        """Open and close each backend (all of them, in auto order, by default)."""
        results = []
        for name in self.names if names is None else names:
            backend, failures = self.try_open((name,), **opts)
            if backend is None:
                results.append(BackendProbe(name, False, failures[0][1]))
                continue
            try:
                summary = getattr(backend, "describe", lambda: "ok")()
            finally:
                backend.close()
            results.append(BackendProbe(name, True, summary))
        return results


def accepted_options(backend_class: type, opts: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of ``opts`` that ``backend_class(...)`` takes by keyword."""
    parameters = inspect.signature(backend_class).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return dict(opts)
    return {key: value for key, value in opts.items() if key in parameters}


class ProvingRegistry:
    """The registry shape for stages whose backends prove themselves by working.

    Opening a hardware codec is not enough to know it works (a driver may
    open and then refuse every frame), so an encoder encodes a test frame and
    a decoder decodes a test keyframe before it is chosen.  ``prove(name,
    **opts)`` opens backend ``name`` and proves it, or raises the stage's
    error; ``proven(backend)`` is ``rootstream doctor``'s line for one that
    worked.  Otherwise the same as :class:`BackendRegistry`: names in auto
    order, one error listing every backend tried and why, probes.
    """

    def __init__(self, kind: str, names: Iterable[str], error: type[RootStreamError], *,
                 prove: Callable[..., Any], proven: Callable[[Any], str], hint: str = ""):
        self.kind = kind  # "encoder", "decoder": used in messages
        self.names = tuple(names)
        self.auto = self.names
        self.error = error
        self._prove = prove
        self._proven = proven
        self.hint = hint  # for "none works here"

    def open(self, name: str = "auto", *, candidates: Iterable[str] | None = None,
             what: str = "", **opts: Any):
        """Backend ``name`` proven, or (``auto``) the first of ``candidates`` that
        proves itself; its ``fallbacks`` say why the ones before it did not."""
        if name != "auto":
            if name not in self.names:
                raise self.error(f"unknown {self.kind} {name!r}",
                                 details=[f"known: auto, {', '.join(self.names)}"])
            return self._prove(name, **opts)
        backend, failed = first_that_opens(
            self.names if candidates is None else candidates,
            lambda candidate: self.attempt(candidate, **opts))
        if backend is None:
            raise self.error(f"no {what or self.kind} works on this machine", hint=self.hint,
                             details=[f"{p.name}: {p.reason}" for p in failed])
        backend.fallbacks = failed
        return backend

    def attempt(self, name: str, **opts: Any):
        """The proven backend, or the BackendProbe saying why it failed."""
        try:
            return self._prove(name, **opts)
        except self.error as exc:
            return BackendProbe(name, False, "; ".join([str(exc), *exc.details]))

    def probe(self, names: Iterable[str] | None = None, **opts: Any) -> list[BackendProbe]:
        """Prove each backend (all of them, in auto order, by default) and close it."""
        results = []
        for name in self.names if names is None else names:
            outcome = self.attempt(name, **opts)
            if not isinstance(outcome, BackendProbe):
                outcome.close()
                outcome = BackendProbe(name, True, self._proven(outcome))
            results.append(outcome)
        return results


def first_that_opens(names: Iterable[str], attempt: Callable[[str], Any]):
    """Try ``attempt(name)`` in order; ``attempt`` returns the opened backend,
    or a BackendProbe saying why it failed.  Returns ``(backend or None,
    [the failures before it])`` for stages that prove a backend by using it
    (an encoder encodes a frame, a decoder decodes one) rather than by opening."""
    failed: list[BackendProbe] = []
    for name in names:
        outcome = attempt(name)
        if isinstance(outcome, BackendProbe):
            failed.append(outcome)
            continue
        return outcome, failed
    return None, failed
