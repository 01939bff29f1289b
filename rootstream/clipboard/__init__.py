"""Clipboard sharing between host and client (``--clipboard`` on both; off by default).

- ``transfer``: one text across a lossy link (chunks, acks, resends, bounded rate);
- ``x11``: the X11 CLIPBOARD selection, watched with XFIXES and owned to paste;
- ``wayland`` (its protocol tables in ``wayland_protocol``): the Wayland
  selection through wlr data-control, on sway and other wlroots desktops;
- ``desktop``: which of the two this session shares, and why;
- ``service``: the session service that joins them, the same on both ends.
"""

from __future__ import annotations

from rootstream.errors import RootStreamError


class ClipboardError(RootStreamError):
    """The desktop's clipboard cannot be watched or set (either backend)."""


def probe_clipboard() -> list[tuple[str, bool, str]]:
    """`rootstream doctor`: can the clipboard of this desktop be shared, and through what?"""
    from rootstream.clipboard.desktop import probe_desktop_clipboards
    from rootstream.clipboard.transfer import MAX_TEXT

    return probe_desktop_clipboards(MAX_TEXT)
