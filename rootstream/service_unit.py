"""`rootstream service`: a systemd user unit that starts the host with the desktop.

The unit is bound to graphical-session.target (PartOf, After, WantedBy): it
starts once the desktop has told the user manager its WAYLAND_DISPLAY/DISPLAY
(desktops import them before reaching that target), so portal and X11
capture find the screen, and it stops when the session ends.  Without a
login (`loginctl enable-linger`) only KMS capture can work: there is no
desktop to ask.

ExecStart= is not a shell line.  systemd splits it into words itself:
whitespace separates, double quotes group, backslash escapes C-style, ``%``
starts a specifier and ``$`` a variable, and a lone ``;`` once separated
commands.  :func:`exec_line` quotes each argument against all of those, and
:func:`split_exec_line` reads a line back by the same rules (for `service
status`, and so a test can check the round trip).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from rootstream.errors import RootStreamError

UNIT_NAME = "rootstream-host.service"
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                   "-_./:=,+@")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_UNESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", ";": ";",
              " ": " "}


class ServiceError(RootStreamError):
    """The user unit could not be written, enabled or removed."""


def quote_exec_arg(arg: str) -> str:
    """One argument as systemd's ExecStart= reads it back unchanged."""
    if any(ord(ch) < 0x20 and ch not in _ESCAPES for ch in arg):
        raise ServiceError("an option contains a control character",
                           hint="systemd unit lines cannot carry it; drop it from the option")
    # Specifiers (%h, %u ...) and variables ($HOME) are expanded inside quotes too.
    text = arg.replace("%", "%%").replace("$", "$$")
    if text and all(ch in _PLAIN for ch in text.replace("%%", "").replace("$$", "")):
        return text
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in text) + '"'


def exec_line(argv: list[str]) -> str:
    return " ".join(quote_exec_arg(arg) for arg in argv)


def split_exec_line(line: str) -> list[str]:
    """systemd's reading of an ExecStart= value (quotes, C escapes, %%, $$)."""
    words: list[str] = []
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            break
        word, quote = [], None
        while i < n and (quote or line[i] not in " \t"):
            ch = line[i]
            if ch in "\"'" and quote in (None, ch):
                quote = None if quote else ch
            elif ch == "\\" and i + 1 < n:
                i += 1
                word.append(_UNESCAPES.get(line[i], "\\" + line[i]))
            elif ch in "%$" and i + 1 < n and line[i + 1] == ch:
                i += 1
                word.append(ch)
            else:
                word.append(ch)
            i += 1
        if quote:
            raise ServiceError("the unit's ExecStart= has unbalanced quotes")
        words.append("".join(word))
    return words


def unit_directory() -> Path:
    """``$XDG_CONFIG_HOME/systemd/user``: where systemd looks for a user's own units."""
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return root / "systemd" / "user"


def host_command(host_args: list[str]) -> list[str]:
    """The interpreter running now, so the unit uses this installation (a venv too)."""
    return [sys.executable, "-m", "rootstream_cli", "host", *host_args]


def render_unit(host_args: list[str]) -> str:
    return (
        "# Written by `rootstream service install`; `rootstream service uninstall` removes it.\n"
        "[Unit]\n"
        "Description=rootstream host: share this desktop's screen, sound and input\n"
        "# Started by the desktop session, after it has imported WAYLAND_DISPLAY/DISPLAY\n"
        "# into the user manager; stopped with it.\n"
        "PartOf=graphical-session.target\n"
        "After=graphical-session.target\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={exec_line(host_command(host_args))}\n"
        "Restart=on-failure\n"
        "RestartSec=5\n"
        "\n"
        "[Install]\n"
        "WantedBy=graphical-session.target\n"
    )


def read_host_args(unit_text: str) -> list[str]:
    """The host options an installed unit runs with."""
    for line in unit_text.splitlines():
        if line.startswith("ExecStart="):
            words = split_exec_line(line[len("ExecStart="):])
            return words[words.index("host") + 1:] if "host" in words else words
    raise ServiceError("the installed unit has no ExecStart= line",
                       hint="reinstall it with `rootstream service install`")


@dataclass(frozen=True)
class ServiceState:
    path: Path
    installed: bool
    host_args: list[str]
    manager: bool  # a user manager answers
    enabled: str = ""  # `systemctl --user is-enabled`, when the manager answers
    active: str = ""


def user_manager_reachable() -> bool:
    if shutil.which("systemctl") is None:
        return False
    return _systemctl("show-environment").returncode == 0


def _systemctl(*args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["systemctl", "--user", *args], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return subprocess.CompletedProcess(args, 1, "", str(exc))


def install(host_args: list[str], *, start: bool = True) -> tuple[Path, list[str]]:
    """Write the unit; enable and start it when a user manager answers.

    Returns the unit's path and the commands still to run by hand ([] when
    done): over ssh or in a container there is often no user manager yet.
    """
    path = unit_directory() / UNIT_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(render_unit(host_args), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise ServiceError(f"could not write {path}", hint="check that directory's permissions",
                           details=[str(exc)]) from exc
    steps = [["daemon-reload"], ["enable", "--now" if start else "--quiet", UNIT_NAME]]
    if not user_manager_reachable():
        return path, [f"systemctl --user {' '.join(step)}" for step in steps]
    for step in steps:
        done = _systemctl(*step)
        if done.returncode != 0:
            raise ServiceError(f"systemctl --user {' '.join(step)} failed",
                               hint=f"see `journalctl --user -u {UNIT_NAME}`",
                               details=[done.stderr.strip()])
    return path, []


def status() -> ServiceState:
    path = unit_directory() / UNIT_NAME
    installed = path.is_file()
    host_args = read_host_args(path.read_text(encoding="utf-8")) if installed else []
    if not user_manager_reachable():
        return ServiceState(path, installed, host_args, manager=False)
    return ServiceState(path, installed, host_args, manager=True,
                        enabled=_systemctl("is-enabled", UNIT_NAME).stdout.strip(),
                        active=_systemctl("is-active", UNIT_NAME).stdout.strip())


def uninstall() -> tuple[Path, bool]:
    """Stop, disable and remove the unit; returns (path, whether a file was removed)."""
    path = unit_directory() / UNIT_NAME
    if user_manager_reachable():
        _systemctl("disable", "--now", UNIT_NAME)
    existed = path.is_file()
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise ServiceError(f"could not remove {path}", details=[str(exc)]) from exc
    if user_manager_reachable():
        _systemctl("daemon-reload")
    return path, existed


def probe_service() -> list[tuple[str, bool, str]]:
    """`rootstream doctor`: is the host set to start with the session?"""
    try:
        state = status()
    except ServiceError as exc:
        return [("unit", False, f"{exc}")]
    if not state.installed:
        return [("unit", False, "not installed (rootstream service install [host options])")]
    where = f"{state.path}, host {' '.join(state.host_args) or '(defaults)'}"
    if not state.manager:
        return [("unit", True, f"installed: {where}; no systemd user manager answers here")]
    return [("unit", state.enabled == "enabled",
             f"{state.enabled}, {state.active}: {where}")]
