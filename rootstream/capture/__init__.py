"""Screen capture: pick a backend with :func:`open_capture`, list them with :func:`probe_captures`.

Backends, in the order ``auto`` tries them:

- ``kms``: the DRM/KMS scanout buffer (needs /dev/dri and the video group);
- ``x11``: the X screen through MIT-SHM, change-driven by XDAMAGE;
- ``test``: a moving pattern stamped with its frame number and capture time.

``auto`` falls back to the test pattern only when this machine has no screen
at all (no X display named, no connected DRM connector).  When there is a
screen but neither kms nor x11 can capture it, streaming a test pattern would
hide the problem, so ``auto`` raises one CaptureError listing every reason.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..backends import BackendProbe, BackendRegistry
from ..errors import CaptureError
from .base import CaptureBackend

__all__ = ["CaptureBackend", "open_capture", "probe_captures", "screen_evidence", "CAPTURES"]

CAPTURES = BackendRegistry("capture", {
    "kms": "rootstream.capture.kms:KmsCapture",
    "x11": "rootstream.capture.x11:X11Capture",
    "test": "rootstream.capture.test_pattern:TestPatternCapture",
}, CaptureError, selecting=("display", "output", "region", "device", "connector"))
SCREEN_BACKENDS = ("kms", "x11")
NO_SCREEN_FALLBACK = "test"
DRM_SYSFS = Path("/sys/class/drm")


def screen_evidence(display: str | None = None) -> str | None:
    """Why we believe this machine has a screen, or None when it has none."""
    name = display or os.environ.get("DISPLAY")
    if name:
        return f"X display {name!r} is named"
    connected = sorted(status.parent.name for status in DRM_SYSFS.glob("card*-*/status")
                       if _read_status(status) == "connected")
    if connected:
        return f"DRM connector {connected[0]} is connected"
    return None


def _read_status(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:  # a connector unplugged while we look
        return ""


def open_capture(name: str = "auto", **opts: Any) -> CaptureBackend:
    """Open capture backend ``name`` ("auto", "kms", "x11" or "test") with ``opts``."""
    if name != "auto":
        return CAPTURES.open(name, **opts)
    backend, failures = CAPTURES.try_open(SCREEN_BACKENDS, **opts)
    if backend is not None:
        return backend
    evidence = screen_evidence(opts.get("display"))
    if evidence is not None:
        raise CAPTURES.failed(
            SCREEN_BACKENDS,
            failures + [(NO_SCREEN_FALLBACK, f"not used: {evidence}, so there is a screen to fix")],
            hint="fix one of the reasons below, or use --source test for the test pattern",
        )
    backend, more = CAPTURES.try_open((NO_SCREEN_FALLBACK,), **opts)
    if backend is None:
        raise CAPTURES.failed(CAPTURES.names, failures + more)
    return backend


def probe_captures(**opts: Any) -> list[BackendProbe]:
    """Open and close every capture backend, in auto order, and say how each went."""
    return CAPTURES.probe(**opts)
