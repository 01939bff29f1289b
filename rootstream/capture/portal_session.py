"""The ScreenCast portal handshake over the session D-Bus, with jeepney.

xdg-desktop-portal is how a Wayland desktop lets an unprivileged program
share the screen: the compositor (through its portal backend) asks the user
which screen, then hands over a PipeWire node to read it from.  The steps:

    CreateSession -> SelectSources -> Start -> OpenPipeWireRemote

The first three answer through a Request object: the method returns at once
and the result comes later as its ``Response`` signal (0 granted, 1 the user
cancelled, 2 refused).  We subscribe to the Request's path before calling,
so a fast answer is never missed; the path is predictable from our bus name
and the ``handle_token`` we choose.

SelectSources asks for monitors, the embedded cursor when offered (the
compositor draws it: nothing for us to do), else cursor metadata, and
persist_mode 2 with the stored restore token, so a host restarted after the
user once said yes does not ask again.  A token the portal refuses makes us
ask once more without it, and the log says so.

After the handshake a small thread watches the bus for the session's
``Closed`` signal and for the portal leaving the bus, so capture can end with
a reason instead of showing a frozen picture.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import CaptureError
from .portal_token import TokenStore

log = logging.getLogger(__name__)

PORTAL_NAME = "org.freedesktop.portal.Desktop"
PORTAL_PATH = "/org/freedesktop/portal/desktop"
SCREENCAST = "org.freedesktop.portal.ScreenCast"
REQUEST = "org.freedesktop.portal.Request"
SESSION = "org.freedesktop.portal.Session"

SOURCE_MONITOR, SOURCE_WINDOW, SOURCE_VIRTUAL = 1, 2, 4
CURSOR_HIDDEN, CURSOR_EMBEDDED, CURSOR_METADATA = 1, 2, 4
CURSOR_NAMES = {CURSOR_HIDDEN: "hidden", CURSOR_EMBEDDED: "embedded", CURSOR_METADATA: "metadata"}
SOURCE_NAMES = {SOURCE_MONITOR: "monitor", SOURCE_WINDOW: "window", SOURCE_VIRTUAL: "virtual"}
PERSIST_PERMANENT = 2
RESTORE_VERSION = 4  # ScreenCast version that brought persist_mode and restore_token

CALL_TIMEOUT = 10.0  # a plain method call or a Request that involves no person
CHOOSE_TIMEOUT = 180.0  # Start may show a dialog: give a person time to answer

PORTAL_HINT = ("install xdg-desktop-portal and the backend for your desktop "
               "(xdg-desktop-portal-gnome, -kde or -wlr) and log in again")
BUS_HINT = "run the host inside your desktop session, where DBUS_SESSION_BUS_ADDRESS is set"


@dataclass
class PortalStream:
    """What a granted Start gives: a PipeWire node and the fd to reach it."""

    node_id: int
    fd: int  # from OpenPipeWireRemote; whoever opens the PipeWire stream owns it
    size: tuple[int, int] | None
    cursor_mode: str  # "embedded", "metadata" or "hidden"


def session_bus_address() -> str:
    """The session bus address, or CaptureError saying there is none."""
    address = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    if address:
        return address
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime, "bus").exists():
        return f"unix:path={runtime}/bus"
    raise CaptureError("there is no D-Bus session bus to reach the screen-sharing portal",
                       hint=BUS_HINT)


def connect(address: str | None = None):
    """A jeepney blocking connection to the session bus, fd passing on."""
    from jeepney.io.blocking import open_dbus_connection

    address = address or session_bus_address()
    try:
        return open_dbus_connection(address, enable_fds=True)
    except (OSError, ValueError) as exc:
        raise CaptureError("cannot connect to the D-Bus session bus", hint=BUS_HINT,
                           details=[f"{address}: {exc}"]) from exc


class PortalBus:
    """Method calls and Request/Response round trips on one connection."""

    def __init__(self, connection, timeout: float = CALL_TIMEOUT):
        from jeepney import DBusAddress

        self.connection = connection
        self.timeout = timeout
        self.portal = DBusAddress(PORTAL_PATH, bus_name=PORTAL_NAME, interface=SCREENCAST)
        self.sender = connection.unique_name[1:].replace(".", "_")

    def call(self, address, method: str, signature: str = "", body: tuple = (),
             what: str = "", timeout: float | None = None):
        """Call ``method`` and return the reply body, or CaptureError naming ``what``."""
        from jeepney import new_method_call
        from jeepney.wrappers import DBusErrorResponse, unwrap_msg

        message = new_method_call(address, method, signature, body)
        try:
            reply = self.connection.send_and_get_reply(message, timeout=timeout or self.timeout)
            return unwrap_msg(reply)
        except TimeoutError as exc:
            raise CaptureError(f"the desktop portal did not answer {what or method}",
                               hint="the portal may be hung: restart it or log in again",
                               details=[f"no reply within {timeout or self.timeout:g} s"]) from exc
        except DBusErrorResponse as exc:
            raise portal_error(exc, what or method) from exc
        except (OSError, EOFError) as exc:  # the bus daemon went away mid-call
            raise CaptureError("lost the connection to the D-Bus session bus", hint=BUS_HINT,
                               details=[f"{what or method}: {exc!r}"]) from exc

    def property(self, name: str):
        from jeepney import DBusAddress

        properties = DBusAddress(PORTAL_PATH, bus_name=PORTAL_NAME,
                                 interface="org.freedesktop.DBus.Properties")
        (_, value), = self.call(properties, "Get", "ss", (SCREENCAST, name),
                                what=f"the ScreenCast {name} property")
        return value

    def request(self, method: str, signature: str, body: tuple, options: dict, what: str,
                timeout: float | None = None) -> dict:
        """Call a Request-returning method and wait for its Response; the results dict."""
        from jeepney import MatchRule, message_bus

        token = f"rootstream_{secrets.token_hex(6)}"
        path = f"{PORTAL_PATH}/request/{self.sender}/{token}"
        rule = MatchRule(type="signal", interface=REQUEST, member="Response", path=path)
        self.call(message_bus, "AddMatch", "s", (rule.serialise(),), what="AddMatch")
        options = dict(options, handle_token=("s", token))
        timeout = timeout or self.timeout
        with self.connection.filter(rule) as responses:
            self.call(self.portal, method, signature, body + (options,), what=what)
            try:
                signal = self.connection.recv_until_filtered(responses, timeout=timeout)
            except TimeoutError as exc:
                raise CaptureError(f"the desktop portal did not answer {what}",
                                   hint="answer the screen-sharing dialog, or restart the portal",
                                   details=[f"no Response within {timeout:g} s"]) from exc
            except (OSError, EOFError) as exc:
                raise CaptureError("lost the connection to the D-Bus session bus",
                                   hint=BUS_HINT, details=[f"{what}: {exc!r}"]) from exc
        code, results = signal.body
        if code == 1:
            raise CaptureError("screen sharing was cancelled in the portal's dialog",
                               hint="start the host again and choose a screen to share",
                               details=[f"{what} answered 1 (cancelled)"])
        if code != 0:
            raise CaptureError(f"the desktop portal refused {what}",
                               hint="see the portal backend's log (journalctl --user -u "
                                    "'xdg-desktop-portal*')", details=[f"response code {code}"])
        return {key: value for key, (_, value) in results.items()}


def portal_error(exc, what: str) -> CaptureError:
    """One sentence and a hint for a D-Bus error reply."""
    name = exc.name or ""
    if name.endswith(("ServiceUnknown", "NameHasNoOwner")):
        return CaptureError("xdg-desktop-portal is not running on the session bus",
                            hint=PORTAL_HINT, details=[f"{what}: {name}"])
    if name.endswith(("UnknownInterface", "UnknownMethod", "InvalidArgs", "UnknownProperty")):
        return CaptureError("the desktop portal has no ScreenCast interface",
                            hint="install the portal backend for your compositor and check "
                                 "that XDG_CURRENT_DESKTOP names your desktop",
                            details=[f"{what}: {name}: {' '.join(map(str, exc.data))}"])
    return CaptureError(f"the desktop portal failed at {what}",
                        hint="see the portal's log (journalctl --user -u 'xdg-desktop-portal*')",
                        details=[f"{name}: {' '.join(map(str, exc.data))}"])


def choose_cursor_mode(available: int) -> int:
    """Embedded when offered (the compositor draws it), else metadata, else hidden."""
    for mode in (CURSOR_EMBEDDED, CURSOR_METADATA):
        if available & mode:
            return mode
    return CURSOR_HIDDEN


class PortalSession:
    """One ScreenCast session: :meth:`start` runs the handshake, :meth:`close` ends it."""

    def __init__(self, *, bus_address: str | None = None, tokens: TokenStore | None = None,
                 timeout: float = CALL_TIMEOUT, choose_timeout: float = CHOOSE_TIMEOUT):
        self.tokens = tokens or TokenStore()
        self.closed_reason: str | None = None
        self.asked_user = False  # True when no stored token was used or it was refused
        self._choose_timeout = choose_timeout
        self._connection = connect(bus_address)
        self._bus = PortalBus(self._connection, timeout)
        self._session: str | None = None
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> PortalStream:
        """The whole handshake; a stored token is tried first, then the user is asked."""
        version = self._check_portal()
        token = self.tokens.load() if version >= RESTORE_VERSION else None
        if token and not self._token_known(token):
            log.warning("portal: the stored restore token is no longer known to the portal "
                        "(revoked or stale): it will ask which screen to share again")
            self.tokens.forget()
            token = None
        if token:
            log.info("portal: restoring the screen chosen before (stored restore token)")
            try:
                return self._handshake(version, token)
            except CaptureError as exc:
                log.warning("portal: the stored restore token was refused (%s); asking which "
                            "screen to share again", exc)
                self.tokens.forget()
                self._close_session()
        self.asked_user = True
        return self._handshake(version, None)

    def _check_portal(self) -> int:
        version = self._bus.property("version")
        sources = self._bus.property("AvailableSourceTypes")
        if not sources & SOURCE_MONITOR:
            raise CaptureError("the desktop portal cannot share whole screens",
                               hint="install the portal backend for your compositor",
                               details=[f"source types offered: {sources}"])
        return version

    def _token_known(self, token: str) -> bool:
        """Whether the portal still keeps what ``token`` restores.

        xdg-desktop-portal keeps restore data in the permission store's
        "screencast" table under the token, and quietly asks the user again
        for one it does not know; looking first is how the log can say so.
        A store we cannot ask is no evidence either way.
        """
        from jeepney import DBusAddress, new_method_call
        from jeepney.wrappers import DBusErrorResponse, unwrap_msg

        store = DBusAddress("/org/freedesktop/impl/portal/PermissionStore",
                            bus_name="org.freedesktop.impl.portal.PermissionStore",
                            interface="org.freedesktop.impl.portal.PermissionStore")
        try:
            unwrap_msg(self._connection.send_and_get_reply(
                new_method_call(store, "Lookup", "ss", ("screencast", token)), timeout=3))
        except DBusErrorResponse as exc:
            return not (exc.name or "").endswith("NotFound")
        except TimeoutError:
            return True
        return True

    def _handshake(self, version: int, token: str | None) -> PortalStream:
        bus = self._bus
        results = bus.request("CreateSession", "a{sv}", (), {
            "session_handle_token": ("s", f"rootstream_{secrets.token_hex(6)}")},
            what="CreateSession")
        self._session = results["session_handle"]
        cursor = choose_cursor_mode(bus.property("AvailableCursorModes") if version >= 2 else 0)
        options = {"types": ("u", SOURCE_MONITOR), "multiple": ("b", False)}
        if version >= 2:
            options["cursor_mode"] = ("u", cursor)
        if version >= RESTORE_VERSION:
            options["persist_mode"] = ("u", PERSIST_PERMANENT)
            if token:
                options["restore_token"] = ("s", token)
        bus.request("SelectSources", "oa{sv}", (self._session,), options, what="SelectSources")
        results = bus.request("Start", "osa{sv}", (self._session, ""), {}, what="Start",
                              timeout=self._choose_timeout)
        streams = results.get("streams") or []
        if not streams:
            raise CaptureError("the desktop portal granted no screen to share",
                               hint="start the host again and choose a screen")
        node_id, properties = streams[0]
        new_token = results.get("restore_token")
        if new_token:
            self.tokens.save(new_token)  # tokens are single-use: keep the new one
        size = properties.get("size")
        fd = self._open_remote()
        self._watch()
        return PortalStream(node_id=node_id, fd=fd,
                            size=tuple(size[1]) if size else None,
                            cursor_mode=CURSOR_NAMES[cursor])

    def _open_remote(self) -> int:
        (remote,) = self._bus.call(self._bus.portal, "OpenPipeWireRemote", "oa{sv}",
                                   (self._session, {}), what="OpenPipeWireRemote")
        return remote.to_raw_fd()

    # -- watching for the end ------------------------------------------------

    def _watch(self) -> None:
        from jeepney import MatchRule, message_bus

        closed = MatchRule(type="signal", interface=SESSION, member="Closed", path=self._session)
        gone = MatchRule(type="signal", sender="org.freedesktop.DBus",
                         interface="org.freedesktop.DBus", member="NameOwnerChanged")
        gone.add_arg_condition(0, PORTAL_NAME)
        for rule in (closed, gone):
            self._bus.call(message_bus, "AddMatch", "s", (rule.serialise(),), what="AddMatch")
        self._watcher = threading.Thread(target=self._watch_loop, args=(closed, gone),
                                         name="portal-watch", daemon=True)
        self._watcher.start()

    def _watch_loop(self, closed, gone) -> None:
        # The only user of the connection once the handshake is over.
        with self._connection.filter(closed) as closes, self._connection.filter(gone) as exits:
            while not self._stop.is_set():
                try:
                    self._connection.recv_until_filtered(closes, timeout=0.2)
                except TimeoutError:
                    if exits and not exits.pop().body[2]:
                        self.closed_reason = "the desktop portal left the session bus"
                        return
                    continue
                except (OSError, ValueError, EOFError):
                    if not self._stop.is_set():
                        self.closed_reason = "lost the connection to the session bus"
                    return
                self.closed_reason = "the compositor closed the screen-sharing session"
                return

    # -- closing -------------------------------------------------------------

    def _close_session(self) -> None:
        from jeepney import DBusAddress

        session, self._session = self._session, None
        if session is None or self.closed_reason:
            return
        try:
            self._bus.call(DBusAddress(session, bus_name=PORTAL_NAME, interface=SESSION),
                           "Close", what="Session.Close", timeout=2)
        except CaptureError as exc:  # the portal may already be gone; nothing to undo
            log.debug("portal: closing the session: %s", exc)

    def close(self) -> None:
        """End the session and drop the bus connection.  Safe to call twice."""
        if self._connection is None:
            return
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(2)
        self._close_session()
        self._connection.close()
        self._connection = None
