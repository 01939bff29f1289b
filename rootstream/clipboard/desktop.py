"""Which clipboard of the desktop to share: Wayland's (wlr data-control) or X11's.

A Wayland session ($WAYLAND_DISPLAY) whose compositor offers data-control
gets the Wayland backend: that is the clipboard native Wayland applications
use.  Everything else gets X11 as before ($DISPLAY, which under a Wayland
desktop without data-control, e.g. GNOME, is XWayland's clipboard: the
compositor keeps it in step with the Wayland one).  A display named on the
command line (host --display) is an X display, so it always means X11.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from rootstream.clipboard import ClipboardError


def open_desktop_clipboard(display: str | None, on_change: Callable[[bytes], None],
                           max_bytes: int, *, log: Callable[[str], None] = print):
    """The watcher for this session's clipboard; says on ``log`` which one and why."""
    wayland_failed = ""
    if display is None and os.environ.get("WAYLAND_DISPLAY"):
        from rootstream.clipboard.wayland import WaylandClipboard

        try:
            watcher = WaylandClipboard(None, on_change, max_bytes)
        except (ClipboardError, OSError) as exc:
            wayland_failed = str(exc)
        else:
            log("rootstream: clipboard: Wayland (wlr data-control)")
            return watcher
    from rootstream.clipboard.x11 import X11Clipboard

    watcher = X11Clipboard(display, on_change, max_bytes)
    why = f" ({wayland_failed})" if wayland_failed else ""
    log(f"rootstream: clipboard: X11{why}")
    return watcher


def probe_desktop_clipboards(max_bytes: int) -> list[tuple[str, bool, str]]:
    """`rootstream doctor`: each backend, whether it works here, and which --clipboard uses."""
    from rootstream.errors import RootStreamError

    def opens(make) -> str:
        try:
            make(lambda data: None).close()
        except (RootStreamError, OSError, ImportError) as exc:
            hint = getattr(exc, "hint", "")
            return f"{exc} ({hint})" if hint else str(exc) or type(exc).__name__
        return ""

    rows = []
    wayland_ok = False
    if os.environ.get("WAYLAND_DISPLAY"):
        from rootstream.clipboard.wayland import WaylandClipboard

        failed = opens(lambda cb: WaylandClipboard(None, cb, max_bytes))
        wayland_ok = not failed
        rows.append(("wayland", wayland_ok, failed or "wlr data-control on $WAYLAND_DISPLAY:"
                     " --clipboard uses it"))
    else:
        rows.append(("wayland", False, "not a Wayland session ($WAYLAND_DISPLAY is not set)"))
    from rootstream.clipboard.x11 import X11Clipboard

    failed = opens(lambda cb: X11Clipboard(None, cb, max_bytes))
    used = ("not used: the Wayland clipboard is" if wayland_ok
            else "XFIXES selection events on this display: --clipboard uses it")
    rows.append(("x11", not failed, failed or used))
    return rows
