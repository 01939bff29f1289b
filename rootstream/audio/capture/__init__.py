"""Host sound capture: one interface, one registry, backends imported lazily.

``open_audio_capture("auto"|"pulse"|"test", **opts)`` returns an AudioCapture
(rootstream.audio.capture.base) whose ``read()`` blocks until the next chunk
of 48 kHz stereo s16 PCM and returns it with the monotonic capture time of
its first sample.

- ``pulse``: the monitor of the default sink (PulseAudio or pipewire-pulse);
- ``test``: a timed tone with marks (rootstream.audio.tone), never chosen by
  ``auto``: it is a signal generator, not a capture.
"""

from __future__ import annotations

from rootstream.audio.capture.base import AudioCapture
from rootstream.backends import BackendProbe, BackendRegistry
from rootstream.errors import AudioError

__all__ = ["AUDIO_CAPTURES", "AudioCapture", "open_audio_capture", "probe_audio_captures"]

AUDIO_CAPTURES = BackendRegistry("audio capture", {
    "pulse": "rootstream.audio.capture.pulse:PulseCapture",
    "test": "rootstream.audio.capture.tone:ToneCapture",
}, AudioError, auto=("pulse",))

AUTO_HINT = "start PulseAudio or pipewire-pulse, or run with --no-audio"


def open_audio_capture(name: str = "auto", **opts) -> AudioCapture:
    """Open the named capture backend; ``auto`` takes the first that opens."""
    if name != "auto":
        return AUDIO_CAPTURES.open(name, **opts)
    capture, failures = AUDIO_CAPTURES.try_open(AUDIO_CAPTURES.auto, **opts)
    if capture is None:
        raise AUDIO_CAPTURES.failed(AUDIO_CAPTURES.auto, failures, hint=AUTO_HINT,
                                    message="no audio capture backend could be opened")
    return capture


def probe_audio_captures(options: dict[str, dict] | None = None) -> list[BackendProbe]:
    """How opening each backend went, for `rootstream doctor`.

    ``options`` maps a backend name to the keyword arguments to open it with.
    """
    options = options or {}
    return [probe for name in AUDIO_CAPTURES.names
            for probe in AUDIO_CAPTURES.probe((name,), **options.get(name, {}))]
