"""`rootstream bench HOST`: measure a host and this machine across the network."""

from __future__ import annotations

import sys

import click

from rootstream.benchrun.plan import DEFAULT_IDLE_SECONDS, DEFAULT_PHASE_SECONDS
from rootstream_cli.options import BackendChoice


@click.command()
@click.argument("host_address", metavar="HOST[:PORT]")
@click.option("--phase", "phases", multiple=True, metavar="WxH@FPS:MBPS",
              help="Run this phase instead of the default plan (repeatable), e.g. "
                   "1920x1080@60:20; `idle` pings without a stream.")
@click.option("--phase-seconds", type=click.FloatRange(0.5, 3600),
              default=DEFAULT_PHASE_SECONDS, show_default=True,
              help="How long each streaming phase runs.")
@click.option("--idle-seconds", type=click.FloatRange(0, 3600),
              default=DEFAULT_IDLE_SECONDS, show_default=True,
              help="How long the idle phase (network alone) runs; 0 skips it.")
@click.option("--decoder", type=BackendChoice("rootstream.decode:DECODE"),
              default="auto", show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True),
              default=None, help="Also write the full results to this file.")
@click.option("--compare", "compare_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Show each figure beside this earlier --json run, as now/before.")
@click.option("--same-clock", is_flag=True,
              help="The host runs on this machine: the client also keeps its own uncorrected "
                   "latency (in the JSON's client_stats) as a check on the clock offset.")
@click.option("--insecure", is_flag=True,
              help="Talk to a host started with --insecure: no encryption, for measuring only.")
def bench(host_address, phases, phase_seconds, idle_seconds, decoder, json_path, compare_path,
          same_clock, insecure):
    """Measure latency, loss, bitrate and CPU against a `rootstream host`.

    Runs a plan of short phases (by default: the network alone, then 720p60
    and 1080p60 at two bitrates each), one session per phase, and prints a
    table. A host streaming its test pattern takes each phase's size and
    rate; a screen is measured at its own. Latency is read from the test
    pattern's pixels and corrected by the clock offset between the machines.
    """
    from rootstream.benchrun.plan import default_plan, parse_phase
    from rootstream.benchrun.report import (
        build_report,
        format_progress,
        format_table,
        load_report,
        write_report,
    )
    from rootstream.benchrun.run import BenchOptions, run_bench
    from rootstream.net.udp import parse_address
    from rootstream_cli.options import host_label

    baseline = load_report(compare_path) if compare_path else None  # fail before measuring
    plan = ([parse_phase(text, idle_seconds if text.strip() == "idle" else phase_seconds)
             for text in phases] if phases else default_plan(phase_seconds, idle_seconds))
    live = sys.stderr.isatty()
    logged: set[int] = set()

    def progress(update) -> None:
        line = format_progress(update)
        if live:
            click.echo(f"\r\x1b[K{line}", err=True, nl=False)
        elif update.elapsed_s >= update.phase.seconds and update.index not in logged:
            logged.add(update.index)
            click.echo(line, err=True)  # a log, not a terminal: one line per phase

    if insecure:
        click.echo("rootstream: WARNING: --insecure: this session is not encrypted", err=True)
    run = run_bench(BenchOptions(target=parse_address(host_address), plan=plan,
                                 decoder=decoder, same_clock=same_clock, insecure=insecure,
                                 host_label=host_label(host_address)),
                    progress=progress)
    if live:
        click.echo("\r\x1b[K", err=True, nl=False)
    report = build_report(run)
    if json_path:
        write_report(report, json_path)
    if report["phases"]:
        click.echo(format_table(report, baseline))
    if run.failure is not None:
        raise run.failure  # after the table: what was measured is still shown
