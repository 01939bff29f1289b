"""Several network namespaces on one Ethernet bridge: a small private LAN for tests.

:class:`rootstream.net.netns.NamespacePair` joins two namespaces by one wire;
discovery and Wake-on-LAN need a LAN: multicast and broadcast that reach
every machine on it, and more than two machines (two hosts claiming one
name, one client).  The bridge lives in a namespace of its own, so, as with
the pair, nothing is added to the machine's own namespace and deleting the
namespaces deletes everything.  Member n gets 10.213.<subnet>.<n+1>/24.
"""

from __future__ import annotations

import itertools
import os
import subprocess

from rootstream.errors import NetworkError
from rootstream.net.netns import _COMMAND_TIMEOUT, DEVICE, PREFIX, SUBNET, Namespace, _run

# Above NamespacePair's numbers, so the two kinds never pick the same name.
_counter = itertools.count(1000)


class NamespaceLan:
    """``count`` namespaces (``members``) on a bridge; a context manager."""

    def __init__(self, count: int = 3, subnet: int = 0, prefix: str = PREFIX):
        if not 2 <= count <= 16 or not 0 <= subnet <= 255:
            raise NetworkError("namespace LAN size or subnet is out of range",
                               details=[f"count={count!r} subnet={subnet!r}"])
        # Names as NamespacePair's (prefix-pid-n-a|b), so netns.cleanup_leftovers
        # also removes what a crashed run left.
        def name(side: str) -> str:
            return f"{prefix}-{os.getpid()}-{next(_counter)}-{side}"

        self.hub = name("b")
        addresses = [f"{SUBNET}.{subnet}.{n + 1}" for n in range(count)]
        self.members = [Namespace(name("a"), address, addresses[0]) for address in addresses]
        self._created: list[str] = []

    def create(self) -> NamespaceLan:
        try:
            _run(["ip", "netns", "add", self.hub], "could not create a network namespace")
            self._created.append(self.hub)
            hub = Namespace(self.hub, "", "")
            _run(hub.command(["ip", "link", "add", "br0", "type", "bridge"]),
                 "could not create the bridge")
            _run(hub.command(["ip", "link", "set", "br0", "up"]), "could not start the bridge")
            for n, member in enumerate(self.members):
                _run(["ip", "netns", "add", member.name], "could not create a network namespace")
                self._created.append(member.name)
                port = f"port{n}"
                _run(["ip", "link", "add", "name", DEVICE, "netns", member.name, "type", "veth",
                      "peer", "name", port, "netns", self.hub], "could not create a veth pair")
                _run(hub.command(["ip", "link", "set", port, "master", "br0", "up"]),
                     "could not attach a veth to the bridge")
                for argv in (["ip", "addr", "add", f"{member.address}/24", "brd", "+",
                              "dev", DEVICE],
                             ["ip", "link", "set", DEVICE, "up"],
                             ["ip", "link", "set", "lo", "up"]):
                    _run(member.command(argv), "could not configure a namespace's link")
        except NetworkError:
            self.close()
            raise
        return self

    def mac(self, member: Namespace) -> str:
        """The MAC of a member's interface on the LAN."""
        out = _run(member.command(["cat", f"/sys/class/net/{DEVICE}/address"]),
                   "could not read a MAC address").stdout
        return out.strip()

    def close(self) -> None:
        while self._created:
            subprocess.run(["ip", "netns", "del", self._created.pop()], capture_output=True,
                           timeout=_COMMAND_TIMEOUT)

    def __enter__(self) -> NamespaceLan:
        return self.create()

    def __exit__(self, *exc_info) -> None:
        self.close()
