"""`rootstream pair`: pair with a host once, list and forget paired machines."""

from __future__ import annotations

import click


@click.command()
@click.argument("host_address", metavar="[HOST[:PORT]]", required=False)
@click.option("--code", default=None,
              help="The code the host shows (asked for when not given).")
@click.option("--name", default=None, help="How the host will list this client "
              "(default: this machine's host name).")
@click.option("--list", "show_list", is_flag=True,
              help="List this machine's fingerprint and every paired machine.")
@click.option("--forget", metavar="NAME|FINGERPRINT", default=None,
              help="Forget a paired machine: it can no longer connect (or be connected to).")
def pair(host_address, code, name, show_list, forget):
    """Pair this client with a host, once.

    On the host run `rootstream host --pair`: it shows a 6-digit code. Here
    run `rootstream pair HOST` and type it (without HOST, the hosts announcing
    themselves on the LAN are listed to choose from). Afterwards `rootstream connect
    HOST` is encrypted and authenticated both ways. Three wrong codes burn a
    code; the host then shows a new one.
    """
    from rootstream.crypto.identity import Identity
    from rootstream.crypto.trust import TrustStore

    trust = TrustStore.open()
    if forget:
        peer = trust.forget(forget)
        click.echo(f"forgot {peer.name} ({peer.fingerprint})")
        return
    if show_list:
        click.echo(f"this machine: {Identity.load_or_create().fingerprint()}")
        peers = trust.list()
        if not peers:
            click.echo("no paired machines")
        for peer in peers:
            click.echo(f"  {peer.name:32} {peer.fingerprint}")
        if not host_address:
            return
    from rootstream.crypto.pair_session import pair_with_host
    from rootstream_cli.discover import resolve_host
    from rootstream_cli.wake import remember_for_waking

    address, label = resolve_host(host_address, pairing=True, command="pair")
    if code is None:
        code = click.prompt("pairing code shown by the host")
    peer = pair_with_host(address, code, label, name=name)
    click.echo(f"paired with {label}: its fingerprint is "
               f"{peer.fingerprint}; this machine's is {Identity.load_or_create().fingerprint()}")
    remember_for_waking(label, address[0])
    click.echo(f"connect with: rootstream connect {host_address or label}")

