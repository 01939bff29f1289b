"""`rootstream host`: share this machine's screen."""

from __future__ import annotations

import signal

import click

from rootstream.net.udp import DEFAULT_PORT
from rootstream_cli.options import BackendChoice, check_host_name, parse_size


@click.command()
@click.option("--source", type=BackendChoice("rootstream.capture:CAPTURES"),
              default="auto", show_default=True,
              help="What to capture. auto: the screen (DRM/KMS, then the Wayland "
                   "ScreenCast portal in a Wayland session, then X11), or the test pattern "
                   "when this machine has no screen at all.")
@click.option("--output", default=None,
              help="Which screen: a connector such as HDMI-A-1 for kms, a RandR output for "
                   "x11. The portal takes no name: its own dialog asks which screen the "
                   "first time, and the restore token it hands back remembers the answer.")
@click.option("--display", default=None,
              help="X display for --source x11 and --input xtest (default: $DISPLAY).")
@click.option("--encoder", type=BackendChoice("rootstream.encode:ENCODE"),
              default="auto", show_default=True,
              help="Video encoder. auto tries VA-API, then NVENC, then x264.")
@click.option("--codec", type=click.Choice(["h264", "hevc"]), default="h264", show_default=True)
@click.option("--size", default="1280x720", show_default=True, callback=parse_size,
              help="Test pattern size, WxH (a screen is streamed at its own size).")
@click.option("--fps", type=click.IntRange(1, 240), default=60, show_default=True,
              help="Frames a second: the test pattern's rate; a screen is grabbed as it "
                   "changes, up to about this rate (5 % over, so a game at exactly this "
                   "rate never waits for the cap).")
@click.option("--bitrate", type=click.FloatRange(0.2, 500), default=10.0, show_default=True,
              help="Video bitrate in Mbit/s: the ceiling; the host lowers it while the "
                   "client reports loss, a growing delay or a shortfall, and raises it back "
                   "slowly.")
@click.option("--min-bitrate", type=click.FloatRange(0.1, 500), default=0.5, show_default=True,
              help="Adaptive bitrate never goes below this, in Mbit/s.")
@click.option("--adapt/--no-adapt", default=True, show_default=True,
              help="Adapt the bitrate to the network (--no-adapt: always --bitrate).")
@click.option("--pacing/--no-pacing", default=True, show_default=True,
              help="Spread a large frame's datagrams over half a frame interval instead "
                   "of one burst.")
@click.option("--fec", type=click.FloatRange(0, 1), default=0.2, show_default=True,
              help="Share of parity datagrams added to each frame (0 turns FEC off).")
@click.option("--bind", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--stats-interval", type=click.FloatRange(0.2, 3600), default=5.0,
              show_default=True, help="Seconds between the one-line figures.")
@click.option("--stats-json", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Append each report to this file as one JSON object per line.")
@click.option("--frame-trace", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Append one JSON line per frame sent with every stage's stamp "
                   "(for bench/bench_glass.py).")
@click.option("--sessions", type=click.IntRange(1), default=None,
              help="Exit after serving this many clients (default: serve forever).")
@click.option("--viewers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="How many clients may watch at once, all from one capture and one "
                   "encode, each in its own encrypted session. The first one's wishes set "
                   "the stream and only its input is injected; the next client past the "
                   "limit is told the host is full.")
@click.option("--refresh-ms", type=click.IntRange(0, 300), default=0, show_default=True,
              help="Recover viewers by intra refresh instead of keyframes: a band of "
                   "fresh blocks sweeps the picture every this many milliseconds, and a "
                   "viewer that joins or loses a frame shows the picture once a sweep has "
                   "passed, without a keyframe for everyone (x264, x265, nvenc). At most "
                   "300: a viewer still waiting after 1 s gets a keyframe after all. 0: off.")
@click.option("--repair/--no-repair", default=True, show_default=True,
              help="Send lost fragments again when a client asks, so a burst of loss "
                   "costs a round trip rather than a keyframe (at most a quarter more "
                   "bandwidth per viewer).")
@click.option("--pair", is_flag=True,
              help="Show a one-time pairing code; a client runs `rootstream pair THIS-HOST` "
                   "and types it. Only paired clients (and this machine) may connect.")
@click.option("--insecure", is_flag=True,
              help="No encryption and no pairing: anyone who can reach the port can watch "
                   "and type. For measuring only; loopback only unless --force.")
@click.option("--force", is_flag=True, help="Allow --insecure on a non-loopback address.")
@click.option("--input", "input_",
              type=BackendChoice("rootstream.input:INJECTORS", attribute="auto",
                                 after=("none",)),
              default="auto", show_default=True,
              help="How the client's keyboard, mouse and gamepads reach this machine. auto: "
                   "uinput (needs /dev/uinput, see udev/; its gamepads pass games' rumble "
                   "to the client's controller), then xtest (keyboard and mouse into the X "
                   "display). none: view only.")
@click.option("--audio", type=BackendChoice("rootstream.audio.capture:AUDIO_CAPTURES",
                                           after=("none",)), default="auto",
              show_default=True,
              help="What the client hears. auto: what this desktop plays (the PulseAudio or "
                   "PipeWire monitor of the default sink), or no sound, with the reason, "
                   "when there is no sound server. test: a tone sweep with timing marks. "
                   "none: picture only.")
@click.option("--mic/--no-mic", default=True, show_default=True,
              help="Play the microphone of a client that sends one (`connect --mic`) into a "
                   "virtual source 'rootstream microphone', made for the session and removed "
                   "after (PulseAudio or PipeWire's pulse server, pactl).")
@click.option("--clipboard", is_flag=True,
              help="Share the desktop's clipboard (Wayland's where the compositor offers "
                   "data-control, else the X11 one of --display; UTF-8 text up to 1 MiB, both "
                   "ways) with a client "
                   "started with --clipboard too. Off by default: a clipboard holds secrets.")
@click.option("--name", "host_name", default=None, callback=check_host_name,
              help="The name clients see and find this host by (default: $ROOTSTREAM_NAME "
                   "or this machine's host name).")
@click.option("--announce/--no-announce", default=True, show_default=True,
              help="Announce name, port and fingerprint on the LAN (mDNS, _rootstream._udp) "
                   "so `rootstream connect` finds this host without an address. Never on "
                   "loopback, never with --insecure.")
@click.option("--room", is_flag=True,
              help="Show a room code: anyone who types it (`rootstream connect HOST --room "
                   "CODE`) joins as a guest and watches, without pairing; nothing is stored. "
                   "Three wrong tries burn the code and a new one is shown.")
@click.option("--handoff", type=click.Choice(["ask", "free", "locked"]), default="ask",
              show_default=True,
              help="What a viewer's request for control does (Ctrl+Alt+Shift+C or "
                   "`connect --control`). ask: the viewer in control accepts it "
                   "(Ctrl+Alt+Shift+A); free: it moves at once; locked: never.")
@click.option("--guests-control", is_flag=True,
              help="With --handoff free: room guests may take control too (else they "
                   "only watch).")
def host(source, output, display, encoder, codec, size, fps, bitrate, min_bitrate, adapt, pacing,
         fec, bind, port, stats_interval, stats_json, frame_trace, sessions, viewers, refresh_ms,
         pair, insecure, force, input_, audio, mic, clipboard, host_name, announce, **sharing):
    """Share this machine's screen with one client at a time (or --viewers N).

    Waits for `rootstream connect` from another machine, streams to it, and
    prints per-stage latency (p50/p95/p99) every few seconds. Ctrl-C stops.
    """
    from rootstream.host import Host, HostOptions, default_host_name
    from rootstream_cli.options import check_insecure

    check_insecure(insecure, bind, force, pair or sharing["room"])
    options = HostOptions(source=source, output=output, display=display, encoder=encoder,
                          codec=codec,
                          size=size, fps=fps, bitrate=int(bitrate * 1_000_000), fec_share=fec,
                          min_bitrate=int(min(min_bitrate, bitrate) * 1_000_000),
                          adaptive=adapt, pacing=pacing,
                          bind=bind, port=port, stats_interval=stats_interval,
                          stats_json=stats_json, frame_trace=frame_trace,
                          max_sessions=sessions, viewers=viewers, refresh_ms=refresh_ms,
                          pair=pair,
                          insecure=insecure, input=input_, audio=audio, clipboard=clipboard,
                          mic=mic,
                          host_name=host_name or default_host_name(), **sharing)
    server = Host(options, log=lambda line: click.echo(line, err=True))
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    announcer = _announce(server, announce and not insecure)
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        if announcer is not None:
            announcer.close()
        server.close()
    if server.video.failure is not None:  # already said in the log, with its hint
        raise SystemExit(1)


def _announce(server, wanted: bool):
    if not wanted:
        return None
    from rootstream.discovery.announce import announce_host

    return announce_host(server.host_name, server.transport.address[1], server.options.bind,
                         config_dir=server.options.config_dir, log=server.log)
