"""Clipboard sharing between host and client (``--clipboard`` on both; off by default).

- ``transfer``: one text across a lossy link (chunks, acks, resends, bounded rate);
- ``x11``: the X11 CLIPBOARD selection, watched with XFIXES and owned to paste;
- ``service``: the session service that joins them, the same on both ends.

Wayland desktops (wlr-data-control) are not supported yet: the X11 clipboard
of ``--display`` / $DISPLAY is what is shared (XWayland's, under Wayland).
"""

from __future__ import annotations

from rootstream.backends import BackendProbe


def probe_clipboard(display: str | None = None) -> list[BackendProbe]:
    """`rootstream doctor`: can the clipboard of this desktop be shared?"""
    from rootstream.clipboard.transfer import MAX_TEXT
    from rootstream.errors import RootStreamError

    try:
        from rootstream.clipboard.x11 import X11Clipboard

        watcher = X11Clipboard(display, lambda data: None, MAX_TEXT)
    except (RootStreamError, OSError, ImportError) as exc:
        hint = getattr(exc, "hint", "")
        return [BackendProbe("x11", False, f"{exc} ({hint})" if hint else str(exc))]
    watcher.close()
    return [BackendProbe("x11", True,
                         "XFIXES selection events on this display: --clipboard works")]
