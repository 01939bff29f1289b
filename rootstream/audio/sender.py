"""Host side of the sound: capture chunks in, AUDIO payloads out.

Chunks of any length are cut into Opus frames; each frame goes out with a
copy of the previous one, so one lost datagram costs nothing.  The stamp in
each payload is the capture time of the first sample that frame *decodes*
to: the encoder's lookahead is subtracted here, once, so no receiver needs
to know about it.
"""

from __future__ import annotations

import numpy as np

from rootstream.audio.chunk import RATE, AudioChunk, samples_to_ns
from rootstream.audio.opus import OpusEncoder
from rootstream.protocol.audio import MAX_AUDIO_DATA, AudioPayload


class AudioSender:
    def __init__(self, encoder: OpusEncoder | None = None, *, redundancy: bool = True):
        self.encoder = encoder or OpusEncoder()
        self.redundancy = redundancy
        self.frame_samples = self.encoder.frame_samples
        self.channels = self.encoder.channels
        self._pending = np.zeros((0, self.channels), np.int16)
        self._pending_ns = 0  # capture time of the first pending sample
        self._position = 0
        self._previous: tuple[bytes, int] | None = None
        self.frames = 0

    def push(self, chunk: AudioChunk) -> list[bytes]:
        """Feed one captured chunk; return the payloads of every frame it completed."""
        if self._pending.shape[0] == 0:
            self._pending_ns = chunk.captured_ns
            self._pending = chunk.pcm
        else:
            self._pending = np.concatenate([self._pending, chunk.pcm])
        payloads = []
        n = self.frame_samples
        while self._pending.shape[0] >= n:
            frame, self._pending = self._pending[:n], self._pending[n:]
            captured_ns = self._pending_ns
            self._pending_ns += samples_to_ns(n, RATE)
            payloads.append(self.encode_frame(np.ascontiguousarray(frame), captured_ns))
        return payloads

    def encode_frame(self, pcm: np.ndarray, captured_ns: int) -> bytes:
        """Encode one frame whose first sample was captured at ``captured_ns``."""
        data = self.encoder.encode(pcm)
        n = self.frame_samples
        decoded_ns = max(captured_ns - samples_to_ns(self.encoder.delay_samples, RATE), 0)
        redundant, redundant_samples = b"", 0
        if self.redundancy and self._previous is not None:
            previous, previous_samples = self._previous
            if len(previous) + len(data) <= MAX_AUDIO_DATA:
                redundant, redundant_samples = previous, previous_samples
        payload = AudioPayload(self.channels, n, self._position & 0xFFFFFFFF, decoded_ns,
                               data, redundant, redundant_samples)
        self._previous = (data, n)
        self._position += n
        self.frames += 1
        return payload.pack()
