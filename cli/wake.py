"""`rootstream wake HOST`: wake a sleeping host with a Wake-on-LAN packet."""

from __future__ import annotations

import sys

import click

from rootstream.net.udp import DEFAULT_PORT


@click.command()
@click.argument("host_name", metavar="HOST")
@click.option("--mac", default=None,
              help="The host's MAC address (default: the one kept when pairing).")
@click.option("--address", default=None,
              help="The host's IPv4 address (default: the one kept when pairing).")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True,
              help="The host's rootstream port, watched for signs of life.")
@click.option("--timeout", type=click.FloatRange(1, 600), default=60.0, show_default=True,
              help="Seconds to wait for the host to answer.")
def wake(host_name, mac, address, port, timeout):
    """Wake HOST (a paired host's name or fingerprint, or an address with --mac).

    Sends the Wake-on-LAN magic packet as a broadcast on the interface toward
    the host (UDP port 9), again every few seconds, until the host announces
    itself or its port answers. The host's firmware and card must have
    Wake-on-LAN on (`ethtool -s DEV wol g`), and it must be on this link.
    """
    target = wake_target(host_name, mac, address)
    wake_now(target, port, timeout)


def wake_target(host_name: str, mac: str | None = None, address: str | None = None):
    """(mac bytes, address, fingerprint, label) from the trust store and the options."""
    import ipaddress

    from rootstream.crypto.client_keys import host_entry_name
    from rootstream.crypto.trust import TrustStore
    from rootstream.errors import NetworkError
    from rootstream.net.wake import parse_mac

    trust = TrustStore.open()
    peer = trust.find(host_entry_name(host_name)) or trust.find(host_name)
    if peer is None:
        try:
            ipaddress.ip_address(host_name)
            address = address or host_name
            peer = next((p for p in trust.list() if p.address == host_name), None)
        except ValueError:
            pass
    mac = mac or (peer.mac if peer else "")
    address = address or (peer.address if peer else "")
    if not mac or not address:
        raise NetworkError(f"the MAC address of {host_name} is not known",
                           hint=f"pair with it again (`rootstream pair {host_name}`) while it "
                                "is awake, or pass --mac and --address")
    return parse_mac(mac), address, peer.fingerprint if peer else "", host_name


def wake_now(target, port: int, timeout: float):
    """Wake and wait, with a progress line; returns the WakeResult."""
    from rootstream.discovery.wait import wake_and_wait
    from rootstream.net.wake import format_mac

    mac, address, fingerprint, label = target
    live = sys.stderr.isatty()
    said = [0]

    def progress(route, elapsed, packets):
        line = (f"waking {label} ({format_mac(mac)}) via {route.device or 'default'} "
                f"{route.broadcast}: {packets} packets, {elapsed:4.1f} s")
        if live:
            click.echo(f"\r{line}", nl=False, err=True)
        elif packets != said[0]:
            said[0] = packets
            click.echo(line, err=True)

    result = wake_and_wait(mac, address, port, fingerprint, timeout=timeout, progress=progress)
    if live:
        click.echo("", err=True)
    if result.announced is not None:
        click.echo(f"{label} is awake after {result.seconds:.1f} s: rootstream host at "
                   f"{result.announced.endpoint()}", err=True)
    else:
        click.echo(f"{label} is awake after {result.seconds:.1f} s, but no rootstream host "
                   f"answers yet (start one, or install the service: rootstream service "
                   f"install)", err=True)
    return result


def remember_for_waking(label: str, address: str, *, quiet: bool = False) -> None:
    """Keep a paired host's MAC (from the kernel's neighbour table, fresh after
    talking to it) and address, so `rootstream wake` works once it sleeps.
    Called after pairing and after each session, so a changed address or card
    is followed."""
    from rootstream.crypto.client_keys import host_entry_name
    from rootstream.crypto.trust import TrustStore
    from rootstream.net.neighbour import mac_of

    trust = TrustStore.open()
    peer = trust.find(host_entry_name(label))
    if peer is None:
        return  # this machine itself, or an --insecure session
    mac = mac_of(address) or peer.mac
    if (mac, address) != (peer.mac, peer.address):
        trust.remember_location(peer.public_key, mac, address)
    if mac and not quiet:
        click.echo(f"kept its MAC address {mac} for `rootstream wake`")
