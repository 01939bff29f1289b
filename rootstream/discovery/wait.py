"""`rootstream wake`: send magic packets until the host shows it is awake.

A card can miss one packet while the link renegotiates, so the packet is sent
again every few seconds.  Meanwhile two signs of life are watched for: the
host's announcement with the expected fingerprint (rootstream is running), or
its kernel refusing a datagram to the port (the machine woke but no host runs
there yet).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from rootstream.discovery.browse import FoundHost, browse
from rootstream.errors import NetworkError
from rootstream.net.wake import Route, port_answers, route_toward, send_magic_packet

RESEND_S = 3.0
TICK_S = 0.5


@dataclass(frozen=True)
class WakeResult:
    seconds: float
    packets: int
    announced: FoundHost | None  # None: only the port answered (no host runs yet)


def wake_and_wait(mac: bytes, address: str, port: int, fingerprint: str = "", *,
                  timeout: float = 60.0, progress=lambda route, elapsed, packets: None
                  ) -> WakeResult:
    """Wake the machine with ``mac`` last seen at ``address``; raise NetworkError on timeout."""
    route = route_toward(address)
    found: list[FoundHost] = []
    stop = threading.Event()

    def announced(hosts: list[FoundHost]) -> bool:
        match = [h for h in hosts if fingerprint and h.fingerprint == fingerprint]
        found.extend(match)
        return bool(match)

    watcher = threading.Thread(target=browse, args=(timeout,), name="wake-watch",
                               kwargs={"until": announced, "stop": stop}, daemon=True)
    if fingerprint:
        watcher.start()
    start = time.monotonic()
    packets, next_send = 0, start
    try:
        while (elapsed := time.monotonic() - start) < timeout:
            if found:
                return WakeResult(elapsed, packets, found[0])
            if time.monotonic() >= next_send:
                send_magic_packet(mac, route)
                packets += 1
                next_send = time.monotonic() + RESEND_S
            progress(route, elapsed, packets)
            if port_answers(address, port, timeout=TICK_S):
                # Awake; give the announcement a moment in case the host is starting.
                if fingerprint and watcher.is_alive():
                    watcher.join(min(2.0, max(0.0, timeout - elapsed)))
                return WakeResult(time.monotonic() - start, packets,
                                  found[0] if found else None)
    finally:
        stop.set()
    raise NetworkError(
        f"no answer from {address} within {timeout:g} s",
        hint=_why_not(route),
        details=[f"{packets} magic packets sent to {route.broadcast}:9"
                 f"{' on ' + route.device if route.device else ''}"])


def _why_not(route: Route) -> str:
    if route.via_gateway:
        return (f"the host is behind the router {route.via_gateway}: Wake-on-LAN packets "
                "stay on this link; wake it from a machine on its own network")
    return ("check that Wake-on-LAN is on in the host's firmware and for its card "
            "(`ethtool -s DEV wol g`), and that it is plugged in by cable")
