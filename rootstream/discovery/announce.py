"""The host's side of discovery: announce name, port and fingerprint over mDNS.

The announcement carries only what anyone on the LAN may know: the name the
host goes by, its UDP port and its identity's fingerprint (a hash of the
public key).  Never a secret, never the pairing code.
"""

from __future__ import annotations

import ipaddress
import re
import threading

from rootstream.discovery import SERVICE_TYPE, TXT_VERSION
from rootstream.errors import NetworkError

# A DNS label (the instance part of the service name) is at most 63 bytes.
_MAX_LABEL_BYTES = 63


def announce_refusal(bind: str) -> str | None:
    """Why a host bound to ``bind`` must not announce, or None when it may.

    A host on loopback is reachable from this machine alone: telling the LAN
    about it would list a host nobody there can connect to.
    """
    if bind == "localhost":
        return "it listens on loopback only"
    try:
        if ipaddress.ip_address(bind).is_loopback:
            return "it listens on loopback only"
    except ValueError:
        return None  # a host name: zeroconf is given no interface list, it announces everywhere
    return None


def instance_label(name: str, fingerprint: str) -> str:
    """``name [ABCD-EFGH]``: unique per identity, so two machines that share a
    host name never fight over one DNS-SD instance (the name clash is then
    shown to the user, with both fingerprints, instead of being renamed away)."""
    suffix = f" [{fingerprint[:9]}]"
    room = _MAX_LABEL_BYTES - len(suffix.encode("utf-8"))
    short = name.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    # A dot would split the DNS label; keep the rest of the name readable.
    return short.replace(".", "-") + suffix


def server_name(fingerprint: str) -> str:
    """The host name the SRV record points at: derived from the key, not from
    gethostname(), so it cannot collide with the machine's own .local name."""
    return "rootstream-" + re.sub(r"[^a-z0-9]", "", fingerprint.lower()) + ".local."


class Announcer:
    """Registers the service on start(); close() says goodbye (TTL 0) and stops."""

    def __init__(self, name: str, port: int, fingerprint: str, bind: str = "0.0.0.0"):
        self.name = name
        self.port = port
        self.fingerprint = fingerprint
        self.bind = bind
        self._zeroconf = None
        self._info = None
        self._starting: threading.Thread | None = None

    def start(self) -> Announcer:
        refusal = announce_refusal(self.bind)
        if refusal:
            raise NetworkError(f"not announcing: {refusal}")
        from zeroconf import (
            InterfaceChoice,
            IPVersion,
            NonUniqueNameException,
            ServiceInfo,
            Zeroconf,
        )

        everywhere = self.bind in ("0.0.0.0", "::", "")
        v6 = ":" in self.bind
        try:
            self._zeroconf = Zeroconf(
                interfaces=InterfaceChoice.All if everywhere else [self.bind],
                ip_version=IPVersion.All if v6 else IPVersion.V4Only)
        except OSError as exc:
            raise NetworkError("could not open the multicast DNS socket",
                               hint="check that an interface is up with multicast, "
                                    "or pass --no-announce",
                               details=[str(exc)]) from exc
        addresses = local_addresses(v6) if everywhere else [self.bind]
        if not addresses:
            self.close()
            raise NetworkError("not announcing: no interface has an address",
                               hint="connect this machine to the LAN, or pass --no-announce")
        label = instance_label(self.name, self.fingerprint)
        self._info = ServiceInfo(
            SERVICE_TYPE, f"{label}.{SERVICE_TYPE}", port=self.port,
            properties={"v": TXT_VERSION, "name": self.name, "fp": self.fingerprint},
            server=server_name(self.fingerprint), parsed_addresses=addresses)
        try:
            self._zeroconf.register_service(self._info, allow_name_change=False)
        except NonUniqueNameException as exc:
            self.close()
            raise NetworkError(
                f"another machine already announces {label!r} with this identity",
                hint="two hosts share one identity (a copied config directory?); "
                     "give one its own, or pass --no-announce") from exc
        except BaseException:
            self.close()
            raise
        return self

    def start_in_background(self, log=print) -> Announcer:
        """start() on a thread: probing that the name is free takes about 2 s
        (RFC 6762's three probes and two announcements), which the host should
        not wait for before it serves.  The outcome goes to ``log``."""
        def run() -> None:
            try:
                self.start()
            except (NetworkError, OSError) as exc:
                log(f"rootstream host: not announcing on the LAN: {exc}")
                return
            log(f"rootstream host: announcing {self.name!r} ({self.fingerprint}) "
                f"as {SERVICE_TYPE}")

        self._starting = threading.Thread(target=run, name="mdns-announce", daemon=True)
        self._starting.start()
        return self

    def close(self) -> None:
        if self._starting is not None:
            self._starting.join()  # bounded: zeroconf's probing ends within seconds
            self._starting = None
        zeroconf, self._zeroconf = self._zeroconf, None
        if zeroconf is None:
            return
        try:
            if self._info is not None:
                zeroconf.unregister_service(self._info)
        finally:
            zeroconf.close()

    def __enter__(self) -> Announcer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()


def local_addresses(v6: bool = False) -> list[str]:
    """This machine's non-loopback, non-link-local addresses (IPv4, and IPv6 when asked)."""
    import ifaddr

    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            text = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            address = ipaddress.ip_address(text.split("%")[0])
            if address.is_loopback or address.is_link_local:
                continue
            if address.version == 6 and not v6:
                continue
            found.append(str(address))
    return found


def announce_host(name: str, port: int, bind: str, *, config_dir: str | None = None,
                  log=print) -> Announcer | None:
    """Start announcing a host, or say in the log why not; never fails the host.

    Being found is a convenience: a host that cannot announce still serves
    clients that know its address.
    """
    from pathlib import Path

    from rootstream.crypto.identity import Identity

    refusal = announce_refusal(bind)
    if refusal:
        log(f"rootstream host: not announcing on the LAN: {refusal}")
        return None
    fingerprint = Identity.load_or_create(Path(config_dir) if config_dir else None).fingerprint()
    return Announcer(name, port, fingerprint, bind).start_in_background(log)
