"""Pick a host found on the LAN for `connect` and `pair` when no address is given."""

from __future__ import annotations

import sys

import click


def found_hosts() -> list:
    """Browse for a moment; the hosts found, paired ones first."""
    from rootstream.crypto.trust import TrustStore
    from rootstream.discovery.browse import browse
    from rootstream.discovery.choose import mark_paired

    return mark_paired(browse(), TrustStore.open().list())


def pick_host(wanted: str | None, *, pairing: bool, command: str):
    """The FoundHost to use: ``wanted`` by name or fingerprint, else the obvious one,
    else the user's answer (or, with no terminal, an error saying what to pass)."""
    from rootstream.discovery.choose import choose, default_choice, describe
    from rootstream.errors import NetworkError

    click.echo("looking for rootstream hosts on the LAN ...", err=True)
    found = found_hosts()
    if wanted is not None:
        return choose(found, wanted)
    if not found:
        raise NetworkError("no rootstream host answered on the LAN",
                           hint=f"give its address: rootstream {command} HOST[:PORT]")
    chosen = default_choice(found, pairing=pairing)
    if chosen is not None:
        click.echo(f"found {describe(chosen)}", err=True)
        return chosen
    for host in found:
        click.echo(f"  {describe(host)}", err=True)
    if not sys.stdin.isatty():
        raise NetworkError(f"{len(found)} hosts found; say which one",  # never 1: see above
                           hint=f"rootstream {command} NAME (or its fingerprint)")
    return choose(found, click.prompt("which host (name or fingerprint)"))


def resolve_host(text: str | None, *, pairing: bool, command: str):
    """((address, port), label) for what the user typed: an address or a resolvable
    name as before; otherwise (or with nothing typed) a host found on the LAN."""
    from rootstream.crypto.trust import TrustStore
    from rootstream.discovery.choose import label_for
    from rootstream.errors import NetworkError
    from rootstream.net.udp import parse_address
    from rootstream_cli.options import host_label

    dns_error = None
    if text is not None:
        try:
            return parse_address(text), host_label(text)
        except NetworkError as exc:
            if not str(exc).startswith("cannot resolve"):
                raise
            dns_error = exc
    try:
        host = pick_host(None if text is None else host_label(text), pairing=pairing,
                         command=command)
    except NetworkError as exc:
        if dns_error is None or not str(exc).startswith("no host named"):
            raise
        raise NetworkError(f"{dns_error}, and no host of that name answered on the LAN",
                           hint=dns_error.hint, details=exc.details) from exc
    return (host.address, host.port), label_for(host, TrustStore.open().list())
