"""`rootstream doctor`'s discovery rows: can this machine announce and browse?"""

from __future__ import annotations

from pathlib import Path

_IFF_UP, _IFF_LOOPBACK, _IFF_MULTICAST = 0x1, 0x8, 0x1000


def multicast_interfaces(sys_net: Path = Path("/sys/class/net")) -> list[str]:
    """Interfaces that are up, not loopback, and can multicast (IFF_* in their flags)."""
    found = []
    for device in sorted(sys_net.iterdir()) if sys_net.is_dir() else []:
        try:
            flags = int((device / "flags").read_text().strip(), 16)
        except (OSError, ValueError):
            continue
        if flags & _IFF_UP and flags & _IFF_MULTICAST and not flags & _IFF_LOOPBACK:
            found.append(device.name)
    return found


def probe_discovery() -> list[tuple[str, bool, str]]:
    try:
        import zeroconf
    except ImportError:
        return [("mdns", False, "python-zeroconf is missing (pip install zeroconf)")]
    from rootstream.discovery.announce import local_addresses

    devices = multicast_interfaces()
    addresses = local_addresses()
    if not devices:
        return [("mdns", False, "no interface is up with multicast: hosts can be reached "
                                "by address only")]
    if not addresses:
        return [("mdns", False, f"{', '.join(devices)} can multicast but has no IPv4 address")]
    return [("mdns", True, f"announce and browse _rootstream._udp on {', '.join(devices)} "
                           f"({', '.join(addresses)}), zeroconf {zeroconf.__version__}")]
