"""Screen capture: pick a backend with :func:`open_capture`, list them with :func:`probe_captures`.

Backends, in the order ``auto`` tries them:

- ``kms``: the DRM/KMS scanout buffer (needs /dev/dri and the video group);
- ``portal``: a Wayland desktop through the ScreenCast portal and PipeWire,
  tried in a Wayland session, or where a session bus is reachable and no X
  display is named (on an X desktop, x11 captures without asking the user);
- ``x11``: the X screen through MIT-SHM, change-driven by XDAMAGE (never
  Xwayland, whose root window holds only the X programs);
- ``test``: a moving pattern stamped with its frame number and capture time.

``auto`` falls back to the test pattern only when this machine has no screen
at all (no Wayland session, no X display named, no connected DRM connector).  When there is a
screen but neither kms nor x11 can capture it, streaming a test pattern would
hide the problem, so ``auto`` raises one CaptureError listing every reason.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..backends import BackendProbe, BackendRegistry, describe_failure
from ..errors import CaptureError, RootStreamError
from .base import CaptureBackend

__all__ = ["CaptureBackend", "open_capture", "probe_captures", "screen_evidence", "CAPTURES"]

CAPTURES = BackendRegistry("capture", {
    "kms": "rootstream.capture.kms:KmsCapture",
    "portal": "rootstream.capture.portal:PortalCapture",
    "x11": "rootstream.capture.x11:X11Capture",
    "test": "rootstream.capture.pattern:PatternCapture",
}, CaptureError, selecting=("display", "output", "region", "device", "connector"))
SCREEN_BACKENDS = ("kms", "portal", "x11")
NO_SCREEN_FALLBACK = "test"
DRM_SYSFS = Path("/sys/class/drm")


def screen_evidence(display: str | None = None) -> str | None:
    """Why we believe this machine has a screen, or None when it has none."""
    from .portal_probe import wayland_session

    wayland = wayland_session()
    if wayland:
        return f"this is a Wayland session ({wayland})"
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
    """Open capture backend ``name`` ("auto", "kms", "portal", "x11" or "test") with ``opts``."""
    if name != "auto":
        return CAPTURES.open(name, **opts)
    failures: list[tuple[str, str]] = []
    for screen in SCREEN_BACKENDS:
        why_not = _portal_not_tried(opts) if screen == "portal" else None
        if why_not:
            failures.append((screen, why_not))
            continue
        backend, failed = CAPTURES.try_open((screen,), **opts)
        failures += failed
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


def _portal_not_tried(opts: dict[str, Any]) -> str | None:
    """Why ``auto`` leaves the portal out here, or None to try it.

    The portal may show the user a dialog, so auto goes there only in a
    Wayland session, or where no X display is named but a session bus is
    (a desktop whose session type we cannot tell).
    """
    from .portal_probe import wayland_session

    if wayland_session():
        return None
    if (opts.get("display") or os.environ.get("DISPLAY")
            or not (os.environ.get("DBUS_SESSION_BUS_ADDRESS")
                    or Path(os.environ.get("XDG_RUNTIME_DIR", "/nonexistent"), "bus").exists())):
        return "not tried: not a Wayland session (WAYLAND_DISPLAY and XDG_SESSION_TYPE unset)"
    return None


def probe_captures(**opts: Any) -> list[BackendProbe]:
    """Open and close every capture backend, in auto order, and say how each went.

    The portal is only checked (bus, portal, source types), never opened:
    opening it would start a screencast and could show the user a dialog.
    """
    results = []
    for name in CAPTURES.names:
        results += [_probe_portal(opts)] if name == "portal" else CAPTURES.probe((name,), **opts)
    return results


def _probe_portal(opts: dict[str, Any]) -> BackendProbe:
    unmet = sorted(key for key in CAPTURES.selecting if opts.get(key) is not None)
    if unmet:
        return BackendProbe("portal", False, f"passed over: it does not take {', '.join(unmet)}")
    try:
        from .portal_probe import portal_summary

        ok, line = portal_summary()
    except (RootStreamError, ImportError, OSError) as exc:
        ok, line = False, describe_failure(exc)
    return BackendProbe("portal", ok, line)
