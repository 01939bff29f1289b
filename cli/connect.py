"""`rootstream connect HOST`: show a host's screen here."""

from __future__ import annotations

import signal

import click

from rootstream_cli.options import BackendChoice


@click.command()
@click.argument("host_address", metavar="[HOST[:PORT]]", required=False)
@click.option("--present", type=BackendChoice("rootstream.present:PRESENT"),
              default="auto",
              show_default=True,
              help="How to show the picture. null decodes and counts without a window.")
@click.option("--fullscreen", is_flag=True,
              help="Start fullscreen (Ctrl+Alt+Shift+F toggles; F11 with --no-input).")
@click.option("--frames", type=click.IntRange(1), default=None,
              help="Exit after showing this many frames.")
@click.option("--seconds", type=click.FloatRange(0.1), default=None,
              help="Exit after this many seconds.")
@click.option("--stats-interval", type=click.FloatRange(0.2, 3600), default=5.0,
              show_default=True, help="Seconds between the one-line figures.")
@click.option("--stats-json", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Append each report to this file as one JSON object per line.")
@click.option("--reconnect-timeout", type=click.FloatRange(0), default=10.0, show_default=True,
              help="When the host goes silent, keep the last picture and try to resume for "
                   "this many seconds (0: end the session at once).")
@click.option("--same-clock", is_flag=True,
              help="The host runs on this machine: also report glass-to-glass latency read "
                   "from the test pattern.")
@click.option("--frame-trace", type=click.Path(dir_okay=False, writable=True), default=None,
              help="With --same-clock: append one JSON line per new test-pattern marker "
                   "with every stage's stamp (for bench/bench_glass.py).")
@click.option("--insecure", is_flag=True,
              help="Talk to a host started with --insecure: no encryption, for measuring only.")
@click.option("--no-input", is_flag=True,
              help="Watch only: send no keyboard, mouse or gamepad input to the host (and "
                   "get no rumble from it; with input, the host's rumble plays on your "
                   "controllers).")
@click.option("--no-audio", is_flag=True,
              help="No sound: the host is asked not to send any (SDL_AUDIODRIVER picks the "
                   "sound device otherwise).")
@click.option("--mic", is_flag=True,
              help="Send this machine's default microphone to the host (Opus, low delay), "
                   "where applications can pick it as 'rootstream microphone'. Off by default.")
@click.option("--clipboard", is_flag=True,
              help="Share this desktop's clipboard (Wayland's where the compositor offers "
                   "data-control, else X11's; UTF-8 text up to 1 MiB, both ways) with "
                   "a host started with --clipboard too. Off by default: a clipboard holds "
                   "secrets.")
@click.option("--wake", is_flag=True,
              help="Wake HOST first (Wake-on-LAN, as `rootstream wake HOST`) and wait "
                   "until it answers.")
@click.option("--room", metavar="CODE", default="",
              help="Join the host's room as a guest with the room code it shows "
                   "(`host --room`): no pairing, nothing stored; guests watch.")
@click.option("--repair/--no-repair", default=True, show_default=True,
              help="Ask the host to send lost fragments again (when it offers it), so a "
                   "burst of loss costs a round trip rather than a keyframe.")
@click.option("--control", is_flag=True,
              help="Ask for control as soon as the session starts (later: Ctrl+Alt+Shift+C). "
                   "Only the viewer in control types, clicks and plays; the others watch.")
def connect(host_address, present, fullscreen, frames, seconds, stats_interval, stats_json,
            reconnect_timeout, same_clock, frame_trace, insecure, no_input, no_audio, mic,
            clipboard, wake, **sharing):
    """Connect to a rootstream host and show its screen.

    HOST may be a name or an address, with an optional :PORT (default 47100).
    Without HOST, or with a name no DNS knows, the hosts announcing themselves
    on the LAN are listed (paired ones first) and a single paired one is taken.
    Prints per-stage latency every few seconds; closing the window or Ctrl-C
    ends the session.
    """
    from rootstream.client import Client, ClientOptions
    from rootstream_cli.discover import resolve_host

    if wake:
        _wake_first(host_address)
    address, label = resolve_host(host_address, pairing=False, command="connect")
    if insecure and sharing["room"]:
        raise click.UsageError("--room and --insecure do not go together")
    if insecure:
        click.echo("rootstream: WARNING: --insecure: this session is not encrypted", err=True)
    options = ClientOptions(host=address, present=present, insecure=insecure,
                            host_label=label,
                            fullscreen=fullscreen, frames=frames, seconds=seconds,
                            stats_interval=stats_interval, stats_json=stats_json,
                            same_clock=same_clock, frame_trace=frame_trace,
                            reconnect_timeout=reconnect_timeout,
                            input=not no_input, audio=not no_audio, clipboard=clipboard,
                            mic=mic, **sharing)
    client = Client(options, log=lambda line: click.echo(line, err=True))
    signal.signal(signal.SIGTERM, lambda *_: client.stop())
    result = client.run()
    click.echo(f"rootstream: {result.reason}; {result.frames_presented} frames shown, "
               f"{result.frames_lost} lost", err=True)
    if result.frames_presented == 0 or result.failure is not None:
        raise SystemExit(1)
    if not insecure and not sharing["room"]:  # a guest keeps nothing of the host
        from rootstream_cli.wake import remember_for_waking

        remember_for_waking(label, address[0], quiet=True)


def _wake_first(host_address: str | None) -> None:
    from rootstream.net.udp import DEFAULT_PORT
    from rootstream_cli.options import host_label
    from rootstream_cli.wake import wake_now, wake_target

    if not host_address:
        raise click.UsageError("--wake needs HOST: a sleeping host cannot answer a search")
    port = int(host_address.rsplit(":", 1)[1]) if host_address.count(":") == 1 else DEFAULT_PORT
    wake_now(wake_target(host_label(host_address)), port, timeout=60.0)
