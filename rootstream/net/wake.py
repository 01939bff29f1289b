"""Wake-on-LAN: the magic packet, sent as a broadcast on the interface toward the host.

A sleeping machine's network card listens for 6 bytes of 0xFF followed by its
own MAC sixteen times, anywhere in a frame.  A UDP datagram to port 9 (the
"discard" port, the convention) carries it.  The host has no IP stack awake
and no ARP answer, so the packet must be a broadcast: the directed broadcast
of the subnet the route to the host leaves by, which the kernel sends out of
that interface only (255.255.255.255 would go out of whichever interface the
default route names).  Across a router it does not reach: that is the nature
of Wake-on-LAN, and :func:`route_toward` says so.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass

from rootstream.errors import NetworkError

WOL_PORT = 9
MAGIC_SIZE = 6 + 16 * 6
assert MAGIC_SIZE == 102

_MAC_TEXT = re.compile(r"^[0-9A-Fa-f]{2}([:-]?)[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}$")


def parse_mac(text: str) -> bytes:
    """``aa:bb:cc:dd:ee:ff``, ``AA-BB-...`` or ``aabbccddeeff`` -> 6 bytes."""
    if not isinstance(text, str) or not _MAC_TEXT.match(text.strip()):
        raise NetworkError(f"{text!r} is not a MAC address",
                           hint="write it as six hex pairs, e.g. 52:54:00:12:34:56")
    mac = bytes.fromhex(re.sub(r"[:-]", "", text.strip()))
    if mac == bytes(6) or mac == b"\xff" * 6 or mac[0] & 1:
        raise NetworkError(f"{text!r} is not a network card's address",
                           hint="a card's MAC is neither all zeros, all ones, nor multicast")
    return mac


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def magic_packet(mac: bytes) -> bytes:
    if len(mac) != 6:
        raise NetworkError("a MAC address is 6 bytes")
    return b"\xff" * 6 + bytes(mac) * 16


@dataclass(frozen=True)
class Route:
    device: str  # "" when unknown
    source: str  # our address on that interface ("" when unknown)
    broadcast: str  # where the magic packet goes
    via_gateway: str = ""  # set when the host is not on our link


def route_toward(address: str) -> Route:
    """The interface the kernel would use to reach ``address``, and its broadcast."""
    try:
        target = ipaddress.ip_address(address)
    except ValueError as exc:
        raise NetworkError(f"{address!r} is not an IP address") from exc
    if target.version != 4:
        # IPv6 has no broadcast; all-nodes multicast on the link would do, but
        # a sleeping card's filter is what matters, and Wake-on-LAN is IPv4 custom.
        raise NetworkError("waking needs the host's IPv4 address",
                           hint="pair or connect over IPv4 once so its address is kept")
    if shutil.which("ip") is None:
        return Route("", "", "255.255.255.255")
    routes = _ip_json(["ip", "-j", "route", "get", address])
    if not routes:
        raise NetworkError(f"no route toward {address}", hint="check the network connection")
    route = routes[0]
    device, source = route.get("dev", ""), route.get("prefsrc", "")
    broadcast = "255.255.255.255"
    for link in _ip_json(["ip", "-j", "-4", "addr", "show", "dev", device]):
        for info in link.get("addr_info", []):
            if info.get("local") == source and info.get("broadcast"):
                broadcast = info["broadcast"]
            elif info.get("local") == source and "prefixlen" in info:
                network = ipaddress.ip_network(f"{source}/{info['prefixlen']}", strict=False)
                broadcast = str(network.broadcast_address)
    return Route(device, source, broadcast, via_gateway=route.get("gateway", ""))


def send_magic_packet(mac: bytes, route: Route, port: int = WOL_PORT) -> None:
    """One magic packet, broadcast from our address on the route's interface."""
    packet = magic_packet(mac)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        try:
            if route.source:
                sock.bind((route.source, 0))
            sock.sendto(packet, (route.broadcast, port))
        except OSError as exc:
            raise NetworkError(f"could not send the wake-up packet to {route.broadcast}",
                               hint="check that the interface toward the host is up",
                               details=[f"{route.device or 'default interface'}: {exc}"]) from exc


def port_answers(address: str, port: int, timeout: float = 0.3) -> bool:
    """Whether the machine at ``address`` is awake: its kernel refuses a datagram
    to a closed port (ICMP port unreachable).  A running rootstream host drops
    unknown datagrams silently, so this is the sign of a machine that woke but
    has no host running; the announcement is the sign of a host that runs."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((address, port))
            sock.send(b"\0")
            sock.recv(1)
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    return True  # something answered


def _ip_json(argv: list[str]) -> list[dict]:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=True).stdout
        doc = json.loads(out or "[]")
    except subprocess.CalledProcessError as exc:
        raise NetworkError("could not read the routing table",
                           details=[" ".join(argv), exc.stderr.strip()]) from exc
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise NetworkError("could not read the routing table",
                           details=[" ".join(argv), str(exc)]) from exc
    return doc if isinstance(doc, list) else []
