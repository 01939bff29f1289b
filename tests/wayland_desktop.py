"""A real Wayland desktop with no GPU, started by the tests (and bench/) themselves.

One :class:`WaylandDesktop` is a private session bus, PipeWire and WirePlumber,
sway on the headless wlroots backend (pixman, no input devices), the ScreenCast
portal backend xdg-desktop-portal-wlr (our build, scripts/build_xdpw.sh), the
permission store that keeps restore tokens, and xdg-desktop-portal itself with
XDG_CURRENT_DESKTOP=sway.  Everything lives in a private XDG_RUNTIME_DIR and is
torn down by :meth:`stop`.  A part that does not come up raises DesktopError
with the tail of its log: the tests that use it fail, they never skip.

Why each odd choice:
- The bus's service directory is empty, so nothing is activated behind our
  back (xdg-desktop-portal would start the document portal, a FUSE mount).
  We start every service ourselves and wait for its bus name.
- sway refuses to run as root, so it runs in a user namespace as uid 1000.
- The portal backend's chooser is ``simple``: a script that logs each call
  and names HEADLESS-1, so a test can count how often the user would have
  been asked.  XDPW_PERSIST_MODE=permanent lets xdpw grant persist_mode 2.

:class:`Painter` is our Wayland client (tests/wayland_painter.c, compiled once
into the cache): a fullscreen window that paints the colours it is told to.
"""

from __future__ import annotations

import hashlib
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("ROOTSTREAM_CACHE")
             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rootstream")
PAINTER_SOURCE = Path(__file__).with_name("wayland_painter.c")
XDG_SHELL_XML = Path("/usr/share/wayland-protocols/stable/xdg-shell/xdg-shell.xml")
SYSTEM_LIBEXEC = Path("/usr/libexec")
OUTPUT = "HEADLESS-1"
START_TIMEOUT = 10.0

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{services}</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

SWAY_CONFIG = """output {output} resolution {width}x{height} position 0 0
default_border none
default_floating_border none
focus_follows_mouse no
xwayland disable
"""

XDPW_CONFIG = """[screencast]
output_name={output}
chooser_type=simple
chooser_cmd={chooser}
max_fps=0
"""

CHOOSER = """#!/bin/sh
# Stands in for the user picking a screen: log the call, name the output,
# or name nothing (the user cancelled) while the file {cancel} exists.
echo called >> "{log}"
[ -e "{cancel}" ] || echo {output}
"""


class DesktopError(RuntimeError):
    """A part of the test desktop did not start."""


def build_xdpw() -> Path:
    """The prefix of our xdg-desktop-portal-wlr build (built once, then cached)."""
    try:
        done = subprocess.run(["bash", str(REPO / "scripts" / "build_xdpw.sh")],
                              capture_output=True, text=True, timeout=600, check=True)
    except subprocess.CalledProcessError as exc:
        raise DesktopError("building xdg-desktop-portal-wlr failed:\n"
                           f"{exc.stderr[-3000:]}") from exc
    return Path(done.stdout.strip().splitlines()[-1])


def build_painter() -> Path:
    """Compile wayland_painter.c (cached by the hash of its source)."""
    source = PAINTER_SOURCE.read_bytes()
    digest = hashlib.sha256(source + XDG_SHELL_XML.read_bytes()).hexdigest()[:12]
    binary = CACHE / f"wayland_painter-{digest}"
    if binary.exists():
        return binary
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        header, glue = Path(work) / "xdg-shell-client-protocol.h", Path(work) / "xdg-shell.c"
        for mode, target in (("client-header", header), ("private-code", glue)):
            subprocess.run(["wayland-scanner", mode, str(XDG_SHELL_XML), str(target)], check=True)
        built = Path(work) / "painter"
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(built), str(PAINTER_SOURCE), str(glue),
                        f"-I{work}", "-lwayland-client"], check=True)
        built.rename(binary)
    return binary


class WaylandDesktop:
    """sway + PipeWire + the ScreenCast portal on a private bus; use as a context manager."""

    def __init__(self, width: int = 1280, height: int = 720, *, state_home: Path | None = None):
        self.width, self.height = width, height
        self.runtime = Path(tempfile.mkdtemp(prefix="rootstream-wayland-"))
        self.runtime.chmod(0o700)
        self.logs = self.runtime / "logs"
        self.logs.mkdir()
        # The token lives in XDG_STATE_HOME and the permission store's database
        # in XDG_DATA_HOME: a test that restarts the desktop passes the same dirs.
        self.state_home = state_home or self.runtime / "state"
        self.chooser_log = self.runtime / "chooser.log"
        self.processes: dict[str, subprocess.Popen] = {}
        self.wayland_display = ""
        self.env = self._base_env()

    def _base_env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items()
               if key not in ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS",
                              "PIPEWIRE_REMOTE", "XDG_SESSION_TYPE", "XDG_CURRENT_DESKTOP")}
        env.update(
            XDG_RUNTIME_DIR=str(self.runtime),
            XDG_CONFIG_HOME=str(self.runtime / "config"),
            XDG_DATA_HOME=str(self.state_home / "data"),
            XDG_STATE_HOME=str(self.state_home),
            DBUS_SESSION_BUS_ADDRESS=f"unix:path={self.runtime / 'bus'}",
        )
        return env

    # -- starting ------------------------------------------------------------

    def start(self) -> WaylandDesktop:
        try:
            xdpw = build_xdpw()
            self._start_bus()
            self._spawn("pipewire", ["pipewire"])
            self._wait_for(lambda: (self.runtime / "pipewire-0").exists(), "pipewire",
                           "its socket pipewire-0")
            self._spawn("wireplumber", ["wireplumber"])
            self._wait_for(self._wireplumber_ready, "wireplumber", "its PipeWire client")
            self._start_sway()
            self._spawn("permission-store", [str(SYSTEM_LIBEXEC / "xdg-permission-store")])
            self._wait_for_name("org.freedesktop.impl.portal.PermissionStore", "permission-store")
            self._start_xdpw(xdpw)
            portal_env = dict(XDG_CURRENT_DESKTOP="sway",
                              XDG_DESKTOP_PORTAL_DIR=str(xdpw / "share/xdg-desktop-portal/portals"))
            self._spawn("portal", [str(SYSTEM_LIBEXEC / "xdg-desktop-portal")], portal_env)
            self._wait_for_name("org.freedesktop.portal.Desktop", "portal")
        except BaseException:
            self.stop()
            raise
        return self

    def start_compositor(self) -> WaylandDesktop:
        """sway alone: for Wayland clients that need no portal, bus or PipeWire."""
        try:
            self._start_sway()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_bus(self) -> None:
        services = self.runtime / "dbus-services"  # empty on purpose: nothing is activated
        services.mkdir()
        config = self.runtime / "bus.conf"
        config.write_text(BUS_CONFIG.format(socket=self.runtime / "bus", services=services))
        self._spawn("dbus", ["dbus-daemon", "--nofork", "--nosyslog", f"--config-file={config}"])
        self._wait_for(lambda: (self.runtime / "bus").exists(), "dbus", "its socket")

    def _start_sway(self) -> None:
        config = self.runtime / "sway.conf"
        config.write_text(SWAY_CONFIG.format(output=OUTPUT, width=self.width, height=self.height))
        env = dict(WLR_BACKENDS="headless", WLR_RENDERER="pixman", WLR_LIBINPUT_NO_DEVICES="1")
        command = ["sway", "--config", str(config)]
        if os.geteuid() == 0:
            # sway will not run as root; uid 1000 in a namespace of its own
            # sees our runtime directory as its own.
            command = ["unshare", "--user", "--map-user=1000", "--map-group=1000"] + command
        self._spawn("sway", command, env)
        self._wait_for(self._find_wayland_socket, "sway", "its Wayland socket")
        self.env["WAYLAND_DISPLAY"] = self.wayland_display
        self.env["XDG_SESSION_TYPE"] = "wayland"

    def _find_wayland_socket(self) -> bool:
        sockets = sorted(p.name for p in self.runtime.glob("wayland-*")
                         if not p.name.endswith(".lock"))
        if sockets:
            self.wayland_display = sockets[0]
        return bool(sockets)

    def _start_xdpw(self, prefix: Path) -> None:
        chooser = self.runtime / "chooser.sh"
        chooser.write_text(CHOOSER.format(log=self.chooser_log, output=OUTPUT,
                                          cancel=self.runtime / "cancel"))
        chooser.chmod(0o755)
        config = self.runtime / "xdpw.conf"
        config.write_text(XDPW_CONFIG.format(output=OUTPUT, chooser=chooser))
        self._spawn("xdpw", [str(prefix / "libexec/xdg-desktop-portal-wlr"), "-l", "INFO",
                             "-c", str(config)], dict(XDPW_PERSIST_MODE="permanent"))
        self._wait_for_name("org.freedesktop.impl.portal.desktop.wlr", "xdpw")

    def _spawn(self, name: str, command: list[str], extra: dict[str, str] | None = None) -> None:
        env = dict(self.env, **(extra or {}))
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - the child keeps it
        with log:
            try:
                self.processes[name] = subprocess.Popen(
                    command, env=env, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as exc:
                raise DesktopError(f"{name} could not be started: {exc}") from exc

    def _wait_for(self, ready, name: str, what: str, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            process = self.processes[name]
            if process.poll() is not None:
                raise DesktopError(f"{name} exited with status {process.returncode} before"
                                   f" {what} appeared:\n{self.log_tail(name)}")
            if time.monotonic() > deadline:
                raise DesktopError(f"{name} did not show {what} within {timeout:g} s:\n"
                                   f"{self.log_tail(name)}")
            time.sleep(0.01)

    def _wait_for_name(self, bus_name: str, name: str) -> None:
        from jeepney import DBusAddress, new_method_call
        from jeepney.io.blocking import open_dbus_connection

        bus = DBusAddress("/org/freedesktop/DBus", bus_name="org.freedesktop.DBus",
                          interface="org.freedesktop.DBus")
        with open_dbus_connection(self.env["DBUS_SESSION_BUS_ADDRESS"]) as connection:
            def owned() -> bool:
                reply = connection.send_and_get_reply(
                    new_method_call(bus, "NameHasOwner", "s", (bus_name,)), timeout=2)
                return bool(reply.body[0])

            self._wait_for(owned, name, f"the bus name {bus_name}")

    def _wireplumber_ready(self) -> bool:
        done = subprocess.run(["pw-cli", "ls", "Client"], env=self.env, capture_output=True,
                              text=True, timeout=5)
        return "wireplumber" in done.stdout.lower()

    # -- using ---------------------------------------------------------------

    def log_tail(self, name: str, lines: int = 30) -> str:
        try:
            text = (self.logs / f"{name}.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def chooser_calls(self) -> int:
        """How many times the portal backend asked 'the user' which screen to share."""
        try:
            return len(self.chooser_log.read_text().splitlines())
        except FileNotFoundError:
            return 0

    def user_cancels(self, cancel: bool = True) -> None:
        """Make the chooser answer as a user who closes the dialog."""
        flag = self.runtime / "cancel"
        if cancel:
            flag.touch()
        else:
            flag.unlink(missing_ok=True)

    def kill(self, name: str) -> None:
        """Kill one part (e.g. "xdpw" or "sway") the way a crash would."""
        process = self.processes[name]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)

    def start_xwayland(self) -> str:
        """An Xwayland server on this desktop (what X programs of a Wayland session
        see as their display); returns its DISPLAY name."""
        read_end, write_end = os.pipe()
        log = open(self.logs / "xwayland.log", "wb")  # noqa: SIM115 - the child keeps it
        with log:
            self.processes["xwayland"] = subprocess.Popen(
                ["Xwayland", "-displayfd", str(write_end), "-nolisten", "tcp", "-noreset"],
                env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                pass_fds=(write_end,), start_new_session=True)
        os.close(write_end)
        text = b""
        try:
            def ready() -> bool:
                nonlocal text
                if select.select([read_end], [], [], 0.05)[0]:
                    text += os.read(read_end, 64)
                return text.endswith(b"\n")

            self._wait_for(ready, "xwayland", "its display number")
        finally:
            os.close(read_end)
        return f":{int(text)}"

    def painter(self) -> Painter:
        return Painter(self)

    # -- stopping ------------------------------------------------------------

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            process = self.processes.pop(name)
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(3)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    try:
                        os.killpg(process.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    process.wait(3)
        shutil.rmtree(self.runtime, ignore_errors=True)

    def __enter__(self) -> WaylandDesktop:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class Painter:
    """Our Wayland client: a fullscreen window painted on command."""

    def __init__(self, desktop: WaylandDesktop):
        command = [str(build_painter()), str(desktop.width), str(desktop.height)]
        self.process = subprocess.Popen(command, env=desktop.env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, bufsize=1)
        line = self._read_line()
        if not line.startswith("committed"):
            raise DesktopError(f"the painter did not paint: {line!r}")
        line = self._read_line()
        if not line.startswith("ready"):
            raise DesktopError(f"the painter did not start: {line!r}")
        _, w, h = line.split()
        self.width, self.height = int(w), int(h)

    def _read_line(self) -> str:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(5)
            raise DesktopError(f"the painter exited: {self.process.stderr.read().strip()}")
        return line.strip()

    def _command(self, text: str) -> int:
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()
        line = self._read_line()
        if not line.startswith("committed "):
            raise DesktopError(f"the painter refused {text!r}: {line}")
        return int(line.split()[1])

    def fill(self, rgb: int) -> int:
        """Paint the whole window; returns the commit time (CLOCK_MONOTONIC ns)."""
        return self._command(f"fill {rgb:06x}")

    def rect(self, x: int, y: int, w: int, h: int, rgb: int) -> int:
        return self._command(f"rect {x} {y} {w} {h} {rgb:06x}")

    def close(self) -> None:
        try:
            self.process.stdin.close()  # end of commands: the painter exits
        except BrokenPipeError:  # it is gone already (the compositor was killed)
            pass
        if self.process.poll() is None:
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(3)
        self.process.stdout.close()
        self.process.stderr.close()

    def __enter__(self) -> Painter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
