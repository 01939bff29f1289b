"""Host sound capture: one interface, one factory, backends imported lazily.

``open_audio_capture("auto"|"pulse"|"test", **opts)`` returns an AudioCapture
whose ``read()`` blocks until the next chunk of 48 kHz stereo s16 PCM and
returns it with the monotonic capture time of its first sample.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from rootstream.audio.chunk import CHANNELS, RATE, AudioChunk
from rootstream.errors import AudioError


class AudioCapture(ABC):
    """A source of AudioChunks; ``read()`` blocks, ``close()`` releases the device."""

    name = "abstract"
    rate = RATE
    channels = CHANNELS

    @abstractmethod
    def read(self) -> AudioChunk:
        """The next chunk; its ``captured_ns`` increases by its length in time."""

    @abstractmethod
    def close(self) -> None:
        """Release the device; idempotent."""

    def __enter__(self) -> AudioCapture:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open_pulse(**opts) -> AudioCapture:
    from rootstream.audio.capture_pulse import PulseCapture

    return PulseCapture(**opts)


def _open_test(**opts) -> AudioCapture:
    from rootstream.audio.capture_test import TestCapture

    return TestCapture(**opts)


# Name, constructor: the one list of backends.  `auto` tries them in this
# order and never picks `test`, which is a signal generator, not a capture.
BACKENDS: dict[str, Callable[..., AudioCapture]] = {"pulse": _open_pulse, "test": _open_test}
AUTO_ORDER = ("pulse",)


def open_audio_capture(name: str = "auto", **opts) -> AudioCapture:
    """Open the named capture backend; ``auto`` takes the first that opens."""
    if name == "auto":
        tried = []
        for candidate in AUTO_ORDER:
            try:
                return BACKENDS[candidate](**opts)
            except AudioError as exc:
                tried.append(f"{candidate}: {_reason(exc)}")
        raise AudioError("no audio capture backend could be opened",
                         hint="start PulseAudio or pipewire-pulse, or run with --no-audio",
                         details=tried)
    try:
        constructor = BACKENDS[name]
    except KeyError:
        known = ", ".join(["auto", *BACKENDS])
        raise AudioError(f"unknown audio capture backend {name!r}",
                         hint=f"known backends: {known}") from None
    return constructor(**opts)


def probe_audio_captures(options: dict[str, dict] | None = None) -> list[tuple[str, bool, str]]:
    """[(name, ok, reason)] for every backend, for `rootstream doctor`.

    ``options`` maps a backend name to the keyword arguments to open it with.
    """
    options = options or {}
    results = []
    for name, constructor in BACKENDS.items():
        try:
            capture = constructor(**options.get(name, {}))
        except AudioError as exc:
            results.append((name, False, _reason(exc)))
            continue
        capture.close()
        results.append((name, True, "opened"))
    return results


def _reason(exc: AudioError) -> str:
    return "; ".join([str(exc), *exc.details])
