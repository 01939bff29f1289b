"""The interface every host sound capture backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

from rootstream.audio.chunk import CHANNELS, RATE, AudioChunk


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

    def describe(self) -> str:
        """What ``rootstream doctor`` says about a backend that opened."""
        return "opened"
