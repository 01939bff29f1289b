"""What one frame carries through the pipeline: its pixels and its stamps.

Every stage writes its own stamp (``time.monotonic_ns()`` of the process it
runs in) so per-stage latency is arithmetic on fields, never a guess.  Host
stamps and client stamps come from different clocks: only differences within
one side are meaningful, plus what the protocol carries across.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(slots=True)
class HostStamps:
    """Monotonic nanoseconds on the host, one per stage boundary."""

    captured: int = 0
    converted: int = 0
    encoded: int = 0
    sent: int = 0  # the last datagram of the frame left the socket


@dataclass(slots=True)
class ClientStamps:
    """Monotonic nanoseconds on the client, one per stage boundary."""

    received: int = 0  # first datagram of the frame arrived
    assembled: int = 0  # last needed datagram arrived, frame complete
    decoded: int = 0
    presented: int = 0


@dataclass(slots=True)
class CapturedFrame:
    """A grabbed picture in a packed 32-bit format.

    ``pixels`` is a uint8 array of shape (height, stride) that the capture
    backend owns and reuses: it is valid until the next ``grab()`` on the same
    backend, so the converter reads it before the next grab.
    """

    pixels: np.ndarray
    width: int
    height: int
    stride: int  # bytes per row, >= width * 4
    pixel_format: str  # "BGRX" (X11, DRM XRGB8888), "BGRA", "RGBX", "RGBA"
    sequence: int  # the backend's own frame counter, from 0
    stamps: HostStamps = field(default_factory=HostStamps)
