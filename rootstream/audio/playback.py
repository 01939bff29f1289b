"""Client playback through SDL audio, fed by the jitter buffer.

SDL calls ``_fill`` from its own audio thread whenever the device wants the
next ``device_samples`` frames; the jitter buffer decodes, conceals and
stretches right there, so what is played is decided as late as possible.
Arrivals come from the network thread through ``push``; one lock guards the
jitter buffer between the two.  After every fill the lip-sync helper learns
when that sound will be heard, and its answer becomes the buffer's extra
delay.

``open_audio_playback("sdl", **opts)`` is the factory; SDL picks its driver
from ``SDL_AUDIODRIVER`` (``disk`` writes the stream to ``SDL_DISKAUDIOFILE``,
which is how tests listen without a sound card).
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable

import numpy as np

from rootstream.audio.alsa_quiet import silence_alsa
from rootstream.audio.chunk import CHANNELS, RATE
from rootstream.audio.jitter import JitterBuffer
from rootstream.audio.sync import AudioSync
from rootstream.audio.timeline import FillTimeline
from rootstream.backends import BackendProbe, BackendRegistry
from rootstream.errors import AudioError, ProtocolError
from rootstream.protocol.audio import AudioPayload


class SdlAudioPlayback:
    name = "sdl"

    def __init__(self, jitter: JitterBuffer | None = None, *, sync: AudioSync | None = None,
                 device_samples: int = 256, device_latency_ns: int | None = None,
                 clock: Callable[[], int] = time.monotonic_ns):
        import sdl2

        self._sdl = sdl2
        self.jitter = jitter or JitterBuffer()
        self.sync = sync if sync is not None else AudioSync()
        self._clock = clock
        self._lock = threading.Lock()
        self.malformed = 0  # payloads that failed to parse, dropped
        self.callback_errors: list[str] = []
        self.played_samples = 0
        # (index of the first sample of a fill, client time of that fill): maps
        # any sample of the output back to when it was handed to the device.
        # The recent past only (100,000 tuples once took 13 MB), and in an
        # array, not as objects that pymalloc scatters (audio/timeline.py).
        self.timeline = FillTimeline()
        silence_alsa()  # its lookups' failures are ours to report, once
        if sdl2.SDL_InitSubSystem(sdl2.SDL_INIT_AUDIO) != 0:
            raise AudioError("SDL audio could not start", hint="try SDL_AUDIODRIVER=pulse or disk",
                             details=[_sdl_error(sdl2)])
        self._callback = sdl2.SDL_AudioCallback(self._fill)  # kept alive: SDL holds a raw pointer
        want = sdl2.SDL_AudioSpec(RATE, sdl2.AUDIO_S16SYS, CHANNELS, device_samples,
                                  self._callback)
        have = sdl2.SDL_AudioSpec(0, 0, 0, 0)
        self._device = sdl2.SDL_OpenAudioDevice(None, 0, ctypes.byref(want), ctypes.byref(have), 0)
        if self._device == 0:
            error = _sdl_error(sdl2)
            sdl2.SDL_QuitSubSystem(sdl2.SDL_INIT_AUDIO)
            raise AudioError("no SDL audio output device could be opened",
                             hint="run with --no-audio, or set SDL_AUDIODRIVER", details=[error])
        self.device_samples = have.samples
        self.driver = (sdl2.SDL_GetCurrentAudioDriver() or b"").decode()
        # A fill is heard after the buffer before it has played out.
        self.device_latency_ns = device_latency_ns if device_latency_ns is not None else \
            have.samples * 1_000_000_000 // RATE
        sdl2.SDL_PauseAudioDevice(self._device, 0)

    def push(self, payload: bytes | memoryview | AudioPayload, now_ns: int | None = None) -> None:
        """Hand over one AUDIO payload as it arrives; a malformed one is counted and dropped."""
        if not isinstance(payload, AudioPayload):
            try:
                payload = AudioPayload.parse(payload)
            except ProtocolError:
                self.malformed += 1
                return
        now = self._clock() if now_ns is None else now_ns
        with self._lock:
            self.jitter.push(payload, now)

    def video_presented(self, host_captured_ns: int, client_presented_ns: int) -> None:
        self.sync.video_presented(host_captured_ns, client_presented_ns)

    def _fill(self, _userdata, stream, length) -> None:
        samples = length // (2 * CHANNELS)
        try:
            now = self._clock()
            with self._lock:
                pcm = self.jitter.read(samples, now)
                captured = self.jitter.last_read_captured_ns
                settling = (self.jitter.delay_ns or 0) - (self.jitter.target_delay_ns or 0)
                if captured is not None:
                    self.sync.audio_played(captured, now + self.device_latency_ns, settling)
                    self.jitter.set_extra_delay(
                        self.sync.extra_delay_ns(self.jitter.extra_delay_ns))
            ctypes.memmove(stream, np.ascontiguousarray(pcm).ctypes.data, samples * 2 * CHANNELS)
            self.timeline.append(self.played_samples, now)
            self.played_samples += samples
        except Exception as exc:  # noqa: BLE001 - nothing may escape into SDL's thread
            ctypes.memset(stream, 0, length)
            if len(self.callback_errors) < 10:
                self.callback_errors.append(repr(exc))

    def describe(self) -> str:
        """What ``rootstream doctor`` says when it opened."""
        return "opened"

    def close(self) -> None:
        if self._device:
            self._sdl.SDL_CloseAudioDevice(self._device)  # waits for a running callback
            self._device = 0
            self._sdl.SDL_QuitSubSystem(self._sdl.SDL_INIT_AUDIO)
        # The callback holds this object (a bound method): a reference cycle
        # that only the cyclic GC frees, and its full collections are rare in
        # a long-running client.  Each closed playback stayed alive with its
        # timeline, jitter buffer and Opus decoder: +435 kB per
        # host restart in the restart soak.  SDL is done with it now.
        self._callback = None

    def __enter__(self) -> SdlAudioPlayback:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _sdl_error(sdl2) -> str:
    return (sdl2.SDL_GetError() or b"").decode(errors="replace")


# One backend (SDL covers PulseAudio, ALSA and PipeWire), on the same registry
# shape as every other stage so doctor and the command line read it alike.
PLAYBACKS = BackendRegistry("audio playback", {"sdl": "rootstream.audio.playback:SdlAudioPlayback"},
                            AudioError)


def open_audio_playback(name: str = "sdl", **opts) -> SdlAudioPlayback:
    """Open the named playback backend."""
    return PLAYBACKS.open(name, **opts)


def probe_audio_playbacks() -> list[BackendProbe]:
    """How opening each playback backend went, for `rootstream doctor`."""
    return PLAYBACKS.probe()
