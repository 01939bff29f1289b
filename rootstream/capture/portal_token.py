"""Where the ScreenCast portal's restore token is kept between host runs.

The first time the host shares the screen, the portal asks the user which one;
with persist_mode 2 it hands back a restore token that lets a later session
skip the question.  The token is a capability (whoever holds it may share the
screen without asking), so it is kept private: one file, mode 0600, in the
XDG state directory ($XDG_STATE_HOME/rootstream/, ~/.local/state by default).
"""

from __future__ import annotations

import os
from pathlib import Path

TOKEN_NAME = "portal-restore-token"


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "rootstream"


class TokenStore:
    """One restore token in a private file; ``path`` defaults to the XDG state dir."""

    def __init__(self, path: Path | None = None):
        self.path = path or state_dir() / TOKEN_NAME

    def load(self) -> str | None:
        try:
            token = self.path.read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return token or None

    def save(self, token: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Written under a temporary name created 0600 and renamed over the
        # old one: never a moment where the token is readable by others or
        # half written.
        temporary = self.path.with_name(self.path.name + ".new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(token + "\n")
        os.replace(temporary, self.path)

    def forget(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
