"""`rootstream service`: start the host with the desktop session (systemd user unit)."""

from __future__ import annotations

import click


@click.group()
def service():
    """Start `rootstream host` whenever you log in to the desktop.

    The systemd user unit (~/.config/systemd/user/rootstream-host.service)
    starts with graphical-session.target, so the desktop's WAYLAND_DISPLAY and
    DISPLAY are known, restarts the host if it fails, and stops with the
    session. Without a login (`loginctl enable-linger`) only --source kms can
    capture: there is no desktop to ask.
    """


@service.command(context_settings={"ignore_unknown_options": True,
                                   "allow_interspersed_args": False})
@click.option("--no-start", is_flag=True, help="Enable the unit but do not start it now.")
@click.argument("host_options", nargs=-1, type=click.UNPROCESSED)
def install(no_start, host_options):
    """Write and enable the unit: `rootstream service install [HOST OPTIONS]`.

    HOST OPTIONS are those of `rootstream host` (e.g. --source portal --fps 60),
    checked now and kept in the unit exactly, spaces and quotes included.
    """
    from rootstream import service_unit
    from rootstream_cli.host import host

    # Parse them as `rootstream host` would, so a typo fails here, not at login.
    with host.make_context("rootstream host", list(host_options)):
        pass
    path, left = service_unit.install(list(host_options), start=not no_start)
    click.echo(f"wrote {path}")
    if left:
        click.echo("no systemd user manager answers here; in your desktop session run:")
        for command in left:
            click.echo(f"  {command}")
    else:
        click.echo("enabled: it starts with your desktop session"
                   + ("" if no_start else ", and runs now"))


@service.command()
def status():
    """Whether the unit is installed, enabled and running, and its host options."""
    from rootstream import service_unit

    state = service_unit.status()
    if not state.installed:
        click.echo(f"not installed ({state.path} does not exist)")
        return
    click.echo(f"installed: {state.path}")
    click.echo(f"host options: {' '.join(_shown(a) for a in state.host_args) or '(none)'}")
    if state.manager:
        click.echo(f"enabled: {state.enabled or 'unknown'}; running: {state.active or 'unknown'}")
    else:
        click.echo("no systemd user manager answers here: enabled/running unknown")


@service.command()
def uninstall():
    """Stop and disable the unit and delete its file."""
    from rootstream import service_unit

    path, existed = service_unit.uninstall()
    click.echo(f"removed {path}" if existed else f"nothing to remove ({path} does not exist)")


def _shown(arg: str) -> str:
    import shlex

    return shlex.quote(arg)
