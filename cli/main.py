"""The ``rootstream`` command: parses options and calls the library."""

from __future__ import annotations

import sys
import warnings

import click

from rootstream import __version__
from rootstream.errors import RootStreamError

# pysdl2 announces on every start that it uses pysdl2-dll's SDL, which is
# the dependency we chose: news to nobody running the command.
warnings.filterwarnings("ignore", message="Using SDL2 binaries from pysdl2-dll",
                        category=UserWarning)


class RootStreamGroup(click.Group):
    """Turns library errors into one plain sentence and a hint.

    A traceback is shown only with ``--debug``; every RootStreamError exits 2,
    anything else (a bug) exits 3.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RootStreamError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"rootstream: {exc}", err=True)
            for line in exc.details:
                click.echo(f"  {line}", err=True)
            if exc.hint:
                click.echo(f"hint: {exc.hint}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            sys.exit(130)


@click.group(cls=RootStreamGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(__version__, prog_name="rootstream")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """rootstream: stream a Linux machine's screen, sound and input over a LAN.

    Run `rootstream host` on the machine to share and
    `rootstream connect HOST` on the machine you play on.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    from rootstream import census
    from rootstream.allocator import start_trimming
    from rootstream.memtrace import start_from_environment

    start_from_environment()  # ROOTSTREAM_TRACEMALLOC=PATH: heap growth for bench/soak.py
    census.start_from_environment()  # ROOTSTREAM_CENSUS=PATH: what grows, by type and container
    # Freed frame-sized and packet-sized blocks back to the system every 10 s:
    # without it glibc's arenas grow for hours (docs/SOAK.md).
    start_trimming()


def _register() -> None:
    from rootstream_cli.bench import bench
    from rootstream_cli.connect import connect
    from rootstream_cli.doctor import doctor
    from rootstream_cli.host import host
    from rootstream_cli.pair import pair
    from rootstream_cli.service import service
    from rootstream_cli.wake import wake

    for command in (host, connect, pair, wake, service, bench, doctor):
        main.add_command(command)


_register()


if __name__ == "__main__":  # pragma: no cover
    main()
