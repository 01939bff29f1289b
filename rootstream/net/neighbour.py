"""The MAC address behind an IP address, read from the kernel's neighbour table.

Right after pairing (or a session) the kernel has just exchanged packets with
the host, so its ARP/NDP entry is fresh: reading it costs nothing and needs no
help from the host.  `ip -j neigh` covers IPv4 and IPv6; /proc/net/arp is the
IPv4 fallback for a machine without iproute2.  Both read the table of the
calling process's network namespace.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
from pathlib import Path

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_USELESS_STATES = {"FAILED", "INCOMPLETE", "NOARP"}
_ATF_COM = 0x2  # /proc/net/arp flag: the entry is complete


def mac_of(address: str) -> str | None:
    """``aa:bb:cc:dd:ee:ff`` for ``address``, or None when the table has no usable entry
    (loopback, a host behind a router, or an entry that has expired)."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return None
    if ip.is_loopback:
        return None
    if shutil.which("ip"):
        mac = _from_ip_neigh(str(ip))
        if mac is not None or ip.version == 6:
            return mac
    return _from_proc_arp(str(ip))


def _from_ip_neigh(address: str) -> str | None:
    try:
        out = subprocess.run(["ip", "-j", "neigh", "show", "to", address], capture_output=True,
                             text=True, timeout=5, check=True).stdout
        entries = json.loads(out or "[]")
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    for entry in entries:
        mac = str(entry.get("lladdr", "")).lower()
        if _MAC.match(mac) and not _USELESS_STATES & set(entry.get("state", [])):
            return mac
    return None


def _from_proc_arp(address: str, table: Path = Path("/proc/net/arp")) -> str | None:
    try:
        lines = table.read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 4 and fields[0] == address and int(fields[2], 16) & _ATF_COM:
            mac = fields[3].lower()
            return mac if _MAC.match(mac) and mac != "00:00:00:00:00:00" else None
    return None
