"""Option parsers shared by several commands."""

from __future__ import annotations

import importlib
import re

import click

_SIZE = re.compile(r"^(\d{2,5})[xX](\d{2,5})$")


class BackendChoice(click.Choice):
    """A stage's backend names, read from its registry ("module:REGISTRY") when
    first needed (parsing or --help): a backend added to a registry is a
    choice here at once, and starting the command line imports no codec."""

    def __init__(self, registry: str, *, attribute: str = "names",
                 before: tuple[str, ...] = ("auto",), after: tuple[str, ...] = ()):
        self._registry, self._attribute = registry, attribute
        self._before, self._after = before, after
        self._names: tuple[str, ...] | None = None
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        if self._names is None:
            module, _, name = self._registry.partition(":")
            registry = getattr(importlib.import_module(module), name)
            self._names = (*self._before, *getattr(registry, self._attribute), *self._after)
        return self._names

    @choices.setter
    def choices(self, _value) -> None:
        """click.Choice sets its list in __init__; ours comes from the registry."""


def parse_size(ctx, param, value: str) -> tuple[int, int]:
    match = _SIZE.match(value.strip())
    if not match:
        raise click.BadParameter("use WIDTHxHEIGHT, e.g. 1920x1080")
    width, height = int(match.group(1)), int(match.group(2))
    if width % 2 or height % 2:
        raise click.BadParameter("width and height must be even (NV12 chroma is 2x2)")
    return width, height


def check_insecure(insecure: bool, bind: str, force: bool, pair: bool) -> None:
    """--insecure is for measuring: loud, and refused beyond loopback unless forced."""
    import ipaddress

    if not insecure:
        return
    if pair:
        raise click.UsageError("--pair (or --room) and --insecure do not go together")
    try:
        loopback = ipaddress.ip_address(bind).is_loopback
    except ValueError:
        loopback = bind == "localhost"
    if not loopback and not force:
        raise click.UsageError(
            f"--insecure on {bind} would let anyone on the network watch and type; "
            "bind 127.0.0.1, or add --force if you really mean it")
    click.echo("rootstream: WARNING: --insecure: nothing is encrypted and any client "
               "is accepted", err=True)


def host_label(address: str) -> str:
    """The host as the user named it, without the port: the trust store's key."""
    text = address.strip()
    if text.startswith("["):
        return text[1:text.find("]")] if "]" in text else text
    return text.split(":")[0] if text.count(":") == 1 else text


def check_host_name(ctx, param, value: str | None) -> str | None:
    """--name is shown to users and announced: 1..64 UTF-8 bytes, printable."""
    from rootstream.crypto.trust import check_peer_name
    from rootstream.errors import PairingError

    if value is None:
        return None
    try:
        return check_peer_name(value)
    except PairingError as exc:
        raise click.BadParameter(exc.hint) from exc
