"""Private files: a 0700 directory and 0600 files written atomically.

Keys and the trust store are the only secrets rootstream keeps on disk.  They
are written to a temporary file created with mode 0600 (never wider, not even
for an instant) and renamed into place, so a crash mid-write leaves either the
old file or the new one, never half a key.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from rootstream.errors import CryptoError

DIR_MODE = 0o700
FILE_MODE = 0o600


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/rootstream``, defaulting to ``~/.config/rootstream``."""
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    # The XDG spec says a relative XDG_CONFIG_HOME is invalid and must be ignored.
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return root / "rootstream"


def _os_error(message: str, path: Path, exc: OSError) -> CryptoError:
    return CryptoError(message, hint=f"check the permissions of {path.parent}",
                       details=[f"{path}: {exc.strerror or exc}"])


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` as 0700, or tighten it to 0700 if it already exists."""
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        if stat.S_IMODE(path.stat().st_mode) != DIR_MODE:
            path.chmod(DIR_MODE)
    except OSError as exc:
        raise _os_error("cannot create the rootstream config directory", path, exc) from exc


def check_private_file(path: Path) -> None:
    """Refuse a key file that other users could read, as ssh does."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise CryptoError(
            "a rootstream key file is readable by other users",
            hint=f"run: chmod 600 {path}",
            details=[f"{path}: mode {mode:04o}"],
        )


def write_private_file(path: Path, data: bytes, *, exclusive: bool = False) -> bool:
    """Write ``data`` to ``path`` with mode 0600, atomically.

    With ``exclusive=True`` an existing file wins (two processes creating an
    identity at the same time end up sharing the first one) and the return
    value says whether this call created the file.
    """
    ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            return True
        os.replace(tmp, path)
        return True
    except OSError as exc:
        raise _os_error("cannot write a rootstream key file", path, exc) from exc
    finally:
        if tmp.exists():
            tmp.unlink()
