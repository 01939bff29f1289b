"""Two network namespaces joined by a veth pair: a private wire for integration tests.

Each :class:`NamespacePair` makes namespaces ``<prefix>-<pid>-<n>-a`` and
``...-b`` with one veth end in each (created directly inside them, so nothing
is ever added to the machine's own namespace) and addresses 10.213.N.1/24 and
10.213.N.2/24.  All traffic between them stays on that wire.  Either side can
shape its egress with a tc token bucket or drop a share of its incoming
packets with nftables, a kernel-level counterpart of
:class:`rootstream.testing.impair.LossyRelay`.

Deleting a namespace deletes everything inside it (the veth pair, qdiscs,
nftables tables), so teardown is two ``ip netns del``.  The pid in the name
lets :func:`cleanup_leftovers` remove what a crashed run left behind without
touching the namespaces of a run still in progress.

Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and ``ip``, ``tc`` and ``nft``
(Debian packages iproute2 and nftables); :func:`probe_netns` says what is
missing.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path

from rootstream.errors import NetworkError

PREFIX = "rsnet"
DEVICE = "veth0"
SUBNET = "10.213"
NETNS_DIR = Path("/run/netns")

_CLONE_NEWNET = 0x40000000
_COMMAND_TIMEOUT = 10.0
_counter = itertools.count()
_NAME = re.compile(r"^(?P<prefix>[A-Za-z0-9_]+)-(?P<pid>\d+)-(?P<n>\d+)-[ab]$")


def probe_netns() -> list[tuple[str, bool, str]]:
    """[(requirement, ok, reason)] for root and each tool, for skips and `doctor`."""
    results = [("root", os.geteuid() == 0, "running as root" if os.geteuid() == 0 else "not root")]
    for tool, package in (("ip", "iproute2"), ("tc", "iproute2"), ("nft", "nftables")):
        path = shutil.which(tool)
        results.append(
            (tool, path is not None, path or f"{tool} not found (apt-get install {package})")
        )
    return results


def _run(argv: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            argv, check=True, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT, **kwargs
        )
    except subprocess.CalledProcessError as exc:
        raise NetworkError(what, details=[" ".join(argv), exc.stderr.strip()]) from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetworkError(what, details=[" ".join(argv), str(exc)]) from exc


def _libc_setns():
    libc = ctypes.CDLL(None, use_errno=True)
    setns = libc.setns
    setns.argtypes = [ctypes.c_int, ctypes.c_int]
    setns.restype = ctypes.c_int
    return setns


class Namespace:
    """One side of a :class:`NamespacePair`."""

    def __init__(self, name: str, address: str, peer_address: str):
        self.name = name
        self.address = address
        self.peer_address = peer_address
        self.device = DEVICE

    def __repr__(self) -> str:
        return f"Namespace({self.name!r}, address={self.address!r})"

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` wrapped to run inside this namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        """Run a command inside the namespace (``subprocess.run`` keywords apply)."""
        return subprocess.run(self.command(argv), **kwargs)

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.command(argv), **kwargs)

    def socket(self, family: int = socket.AF_INET, kind: int = socket.SOCK_DGRAM) -> socket.socket:
        """A socket that lives in this namespace, usable from this process.

        A socket keeps the namespace it was created in, so a short-lived
        thread enters the namespace (setns changes only the calling thread),
        creates it and ends; the rest of the process never leaves home.
        """
        result: list = []

        def create() -> None:
            try:
                with open(NETNS_DIR / self.name, "rb") as handle:
                    if _libc_setns()(handle.fileno(), _CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
                result.append(socket.socket(family, kind))
            except OSError as exc:
                result.append(exc)

        worker = threading.Thread(target=create, name=f"netns-{self.name}")
        worker.start()
        worker.join()
        if isinstance(result[0], OSError):
            raise NetworkError(
                "could not open a socket in the namespace", details=[f"{self.name}: {result[0]}"]
            ) from result[0]
        return result[0]

    def limit_rate(self, rate: str = "20mbit", burst: str = "32kb", latency: str = "50ms") -> None:
        """Cap this side's egress with a token bucket (tc tbf), like a slow uplink."""
        _run(
            self.command(
                [
                    "tc",
                    "qdisc",
                    "replace",
                    "dev",
                    self.device,
                    "root",
                    "tbf",
                    "rate",
                    rate,
                    "burst",
                    burst,
                    "latency",
                    latency,
                ]
            ),
            "could not shape the namespace link",
        )

    def drop_randomly(self, percent: int) -> None:
        """Drop about ``percent`` % of the packets arriving on the veth, at random.

        The rule sits on the receiving side's input hook: dropping in output
        would make the sender's sendto() fail with EPERM, which real loss never
        does.  It is the only rule of a table of our own; calling again
        replaces it.
        """
        if not isinstance(percent, int) or not 0 <= percent <= 100:
            raise NetworkError("drop percentage is out of range", details=[f"percent={percent!r}"])
        ruleset = (
            "table inet rootstream_impair\n"
            "delete table inet rootstream_impair\n"
            "table inet rootstream_impair {\n"
            "  chain input {\n"
            "    type filter hook input priority 0; policy accept;\n"
            f'    iifname "{self.device}" numgen random mod 100 < {percent} counter drop\n'
            "  }\n"
            "}\n"
        )
        _run(self.command(["nft", "-f", "-"]), "could not add the drop rule", input=ruleset)

    def clear_impairments(self) -> None:
        """Remove the tbf qdisc and the drop table, if present."""
        self.run(
            ["tc", "qdisc", "del", "dev", self.device, "root"],
            capture_output=True,
            timeout=_COMMAND_TIMEOUT,
        )
        self.run(
            ["nft", "delete", "table", "inet", "rootstream_impair"],
            capture_output=True,
            timeout=_COMMAND_TIMEOUT,
        )


class NamespacePair:
    """Namespaces ``a`` and ``b`` joined by a veth pair; a context manager.

    ``subnet`` picks 10.213.<subnet>.0/24.  Every pair lives in namespaces of
    its own, so pairs never clash even when they share a subnet.
    """

    def __init__(self, subnet: int = 0, prefix: str = PREFIX):
        if not 0 <= subnet <= 255:
            raise NetworkError("namespace subnet is out of range", details=[f"subnet={subnet!r}"])
        if not re.fullmatch(r"[A-Za-z0-9_]+", prefix):
            raise NetworkError(
                "namespace prefix must be letters, digits or _", details=[f"prefix={prefix!r}"]
            )
        base = f"{prefix}-{os.getpid()}-{next(_counter)}"
        first, second = f"{SUBNET}.{subnet}.1", f"{SUBNET}.{subnet}.2"
        self.a = Namespace(f"{base}-a", first, second)
        self.b = Namespace(f"{base}-b", second, first)
        self._created: list[str] = []

    def create(self) -> NamespacePair:
        try:
            for side in (self.a, self.b):
                _run(["ip", "netns", "add", side.name], "could not create a network namespace")
                self._created.append(side.name)
            _run(
                [
                    "ip",
                    "link",
                    "add",
                    "name",
                    DEVICE,
                    "netns",
                    self.a.name,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    DEVICE,
                    "netns",
                    self.b.name,
                ],
                "could not create the veth pair",
            )
            for side in (self.a, self.b):
                _run(
                    side.command(["ip", "addr", "add", f"{side.address}/24", "dev", DEVICE]),
                    "could not address the veth pair",
                )
                _run(
                    side.command(["ip", "link", "set", DEVICE, "up"]),
                    "could not bring the veth pair up",
                )
                _run(side.command(["ip", "link", "set", "lo", "up"]), "could not bring loopback up")
        except NetworkError:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Delete both namespaces (and with them the veth pair and its rules)."""
        while self._created:
            name = self._created.pop()
            subprocess.run(
                ["ip", "netns", "del", name], capture_output=True, timeout=_COMMAND_TIMEOUT
            )

    def __enter__(self) -> NamespacePair:
        return self.create()

    def __exit__(self, *exc_info) -> None:
        self.close()


def list_namespaces(prefix: str = PREFIX) -> list[str]:
    """Names of the namespaces this module made with ``prefix``."""
    out = _run(["ip", "netns", "list"], "could not list network namespaces").stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [name for name in names if (m := _NAME.match(name)) and m["prefix"] == prefix]


def cleanup_leftovers(prefix: str = PREFIX) -> list[str]:
    """Delete namespaces left by runs that died; returns the names removed.

    A namespace whose creating process is still alive is left alone, so a
    parallel test run keeps its wires.
    """
    removed = []
    for name in list_namespaces(prefix):
        pid = int(_NAME.match(name)["pid"])
        if _alive(pid):
            continue
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=_COMMAND_TIMEOUT)
        removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
