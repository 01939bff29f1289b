"""The client's side of discovery: listen for hosts for a moment, then pick one.

``browse`` is bounded (1.5 s by default): a host answers a query within a
few hundred milliseconds, and a user waiting on `rootstream connect` should
not wait for stragglers.  ``choose`` turns what the user typed into one host
and refuses a name that two identities claim, because picking either would be
a guess an attacker on the LAN could steer.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from rootstream.discovery import SERVICE_TYPE
from rootstream.errors import NetworkError

BROWSE_SECONDS = 1.5
_RESOLVE_MS = 400


@dataclass(frozen=True)
class FoundHost:
    name: str
    fingerprint: str
    addresses: tuple[str, ...]
    port: int
    paired_as: str = ""  # the trust-store label this client knows it by, "" when unpaired

    @property
    def address(self) -> str:
        return self.addresses[0]

    def endpoint(self) -> str:
        """``address:port`` as `rootstream connect` takes it."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


@dataclass
class _Seen:
    """Instance names zeroconf's thread has reported; read from the caller's."""

    names: set[str] = field(default_factory=set)
    changed: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str) -> None:
        with self.lock:
            self.names.add(name)
        self.changed.set()

    def new(self, known) -> list[str]:
        with self.lock:
            return sorted(self.names - set(known))


def browse(seconds: float = BROWSE_SECONDS, *, until=None,
           stop: threading.Event | None = None) -> list[FoundHost]:
    """The hosts that answered within ``seconds``, each once, in no set order.

    ``until(found)`` may end the wait early: it is called with the hosts found
    so far whenever a new one appears, and returns True to stop; so does
    setting ``stop`` from another thread.
    """
    from zeroconf import IPVersion, ServiceBrowser, ServiceStateChange, Zeroconf

    try:
        zc = Zeroconf(ip_version=IPVersion.V4Only)
    except OSError as exc:
        raise NetworkError("could not open the multicast DNS socket",
                           hint="check that an interface is up with multicast, or give "
                                "the host's address", details=[str(exc)]) from exc
    seen = _Seen()

    def on_change(zeroconf, service_type, name, state_change):
        if state_change is not ServiceStateChange.Removed:
            seen.add(name)

    found: dict[str, FoundHost] = {}
    try:
        browser = ServiceBrowser(zc, SERVICE_TYPE, handlers=[on_change])
        deadline = time.monotonic() + seconds
        try:
            while (left := deadline - time.monotonic()) > 0:
                if stop is not None and stop.is_set():
                    break
                if not seen.changed.wait(left if stop is None else min(left, 0.1)):
                    continue
                seen.changed.clear()
                for name in seen.new(found):
                    host = _resolve(zc, name, max(0.05, deadline - time.monotonic()))
                    if host is not None:
                        found[name] = host
                if until is not None and until(list(found.values())):
                    break
        finally:
            browser.cancel()
    finally:
        zc.close()
    return list(found.values())


def _resolve(zc, instance: str, seconds: float) -> FoundHost | None:
    """SRV, TXT and A records of one instance; None when they are missing or malformed.

    The answer to a browse usually carries them all, so the cache has them and
    no second query goes out.
    """
    from zeroconf import ServiceInfo

    info = ServiceInfo(SERVICE_TYPE, instance)
    if not info.load_from_cache(zc) and not info.request(zc, min(_RESOLVE_MS, seconds * 1000)):
        return None
    return host_from_record(info.decoded_properties, info.parsed_addresses(), info.port)


def host_from_record(properties: dict, addresses: list[str], port) -> FoundHost | None:
    """A FoundHost from an announcement's TXT, or None for one that is not ours."""
    from rootstream.crypto.identity import normalise_fingerprint

    name, fp = properties.get("name"), properties.get("fp")
    if not name or not fp or not addresses or not isinstance(port, int) or not 0 < port < 65536:
        return None
    if len(name.encode("utf-8")) > 64 or any(not ch.isprintable() for ch in name):
        return None  # shown to the user: no control characters from strangers
    fingerprint = normalise_fingerprint(fp)
    if len(fingerprint) != 19:
        return None
    return FoundHost(name, fingerprint, tuple(addresses), port)
