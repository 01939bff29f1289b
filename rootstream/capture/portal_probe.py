"""Is the ScreenCast portal usable here?  Checked step by step, without sharing anything.

``auto`` asks :func:`wayland_session` whether to try the portal at all, and
``rootstream doctor`` prints :func:`portal_steps`: each step of reaching the
portal, what it found, and on failure what to do.  Neither starts a
screencast, so neither makes the portal show its dialog.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from ..errors import CaptureError
from .portal_session import (
    CURSOR_NAMES,
    PORTAL_HINT,
    RESTORE_VERSION,
    SOURCE_MONITOR,
    SOURCE_NAMES,
    PortalBus,
    connect,
)
from .portal_token import TokenStore


def wayland_session() -> str | None:
    """Why we believe this is a Wayland session, or None."""
    if os.environ.get("WAYLAND_DISPLAY"):
        return f"WAYLAND_DISPLAY={os.environ['WAYLAND_DISPLAY']}"
    if os.environ.get("XDG_SESSION_TYPE") == "wayland":
        return "XDG_SESSION_TYPE=wayland"
    return None


def _names(bits: int, table: dict[int, str]) -> str:
    return ", ".join(name for bit, name in table.items() if bits & bit) or "none"


def portal_steps(tokens: TokenStore | None = None) -> Iterator[tuple[str, bool, str]]:
    """(step, ok, what it found or what to do) for each step; stops at the first failure."""
    session = wayland_session()
    yield ("Wayland session", True, session or "no (X11 or no desktop): the portal may still "
           "work, but x11 capture is tried first there")
    try:
        connection = connect()
    except CaptureError as exc:
        yield ("session bus", False, f"{exc}; {exc.hint}")
        return
    with connection:
        yield ("session bus", True, f"connected as {connection.unique_name}")
        bus = PortalBus(connection, timeout=3)
        try:
            version = bus.property("version")
        except CaptureError as exc:
            yield ("ScreenCast portal", False, f"{exc}; {exc.hint}")
            return
        yield ("ScreenCast portal", True, f"org.freedesktop.portal.ScreenCast version {version}")
        sources = bus.property("AvailableSourceTypes")
        yield ("source types", bool(sources & SOURCE_MONITOR), _names(sources, SOURCE_NAMES)
               + ("" if sources & SOURCE_MONITOR else
                  "; whole screens cannot be shared: install the portal backend for your "
                  "compositor"))
        cursors = bus.property("AvailableCursorModes") if version >= 2 else 0
        yield ("cursor modes", True, _names(cursors, CURSOR_NAMES) + (
            "" if cursors & 0b110 else "; the pointer will not be shown"))
    tokens = tokens or TokenStore()
    if version < RESTORE_VERSION:
        yield ("restore token", True, f"portal version {version} cannot remember the choice: "
               "the host asks which screen at every start")
    elif tokens.load():
        yield ("restore token", True, f"stored in {tokens.path}: the host starts without "
               "asking (delete the file to choose another screen)")
    else:
        yield ("restore token", True, "none stored yet: the first `rootstream host` shows "
               "the portal's screen chooser, then remembers the answer")


def portal_summary() -> tuple[bool, str]:
    """(usable, one line) for the doctor's capture table, from :func:`portal_steps`."""
    found = []
    for step, ok, what in portal_steps():
        if not ok:
            return False, f"{step}: {what}"
        if step in ("ScreenCast portal", "cursor modes", "restore token"):
            found.append(f"{step}: {what.split(';')[0].split(':')[0]}")
    return True, "; ".join(found) or PORTAL_HINT
