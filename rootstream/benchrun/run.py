"""The bench driver: one client session per phase against a normal host.

Each streaming phase is a fresh :class:`rootstream.client.Client` whose hello
asks for the phase's size, frame rate and bitrate, with a
:class:`~rootstream.benchrun.meter.PhaseMeter` riding along as a service and
the null presenter (decode and count: the bench measures the pipeline, not a
monitor).  The idle phase pings without a session (after the handshake, on an
encrypted host; see idle.py).  Between phases the host sees a bye and is free
for the next hello at once.

The meter reads each shown picture's pixels (the latency is in the test
pattern's marker) through ClientService.picture_presented.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rootstream.benchrun.idle import run_idle
from rootstream.benchrun.meter import DEFAULT_PING_INTERVAL_S, PhaseMeter
from rootstream.benchrun.plan import Phase
from rootstream.client import Client, ClientOptions
from rootstream.crypto.client_keys import ClientKeys
from rootstream.errors import NetworkError, RootStreamError
from rootstream.machine import Machine, describe_machine
from rootstream.protocol import PacketType

# The first moments of a session (opening the decoder, the first keyframe)
# are not the steady state the table describes.
WARMUP_SHARE, WARMUP_MAX_S = 0.1, 1.0
PROGRESS_INTERVAL_S = 0.5


@dataclass
class BenchOptions:
    target: tuple[str, int]
    plan: list[Phase]
    decoder: str = "auto"
    same_clock: bool = False  # host on this machine: the client also keeps its own glass ring
    ping_interval_s: float = DEFAULT_PING_INTERVAL_S
    client_name: str = "rootstream-bench"
    insecure: bool = False  # the host runs with --insecure: no handshake
    config_dir: str | None = None  # identity and trust store (default: XDG config dir)
    host_label: str = ""  # the host as paired (default: the address given)


@dataclass
class Progress:
    """What the progress line shows, handed to the callback twice a second."""

    index: int  # phase number, from 0
    phases: int
    phase: Phase
    elapsed_s: float
    shown: int
    latency_ms: float | None
    rtt_ms: float | None


@dataclass
class BenchRun:
    """The raw outcome; report.build_report() turns it into the JSON document."""

    target: tuple[str, int]
    started: float  # time.time()
    client: Machine
    decoder: str
    phases: list[tuple[Phase, dict]] = field(default_factory=list)  # (phase, figures)
    host: dict | None = None  # from the host's config: machine and backends
    failure: RootStreamError | None = None  # why the run stopped before its plan's end


def resolve_decoder(name: str) -> str:
    """The backend ``name`` opens here ("auto" resolved), so the report can name it."""
    from rootstream.decode import open_decoder

    decoder = open_decoder(name, codec="h264")
    try:
        return decoder.name
    finally:
        decoder.close()


def run_bench(options: BenchOptions, *, progress: Callable[[Progress], None] | None = None,
              log: Callable[[str], None] = lambda line: None) -> BenchRun:
    run = BenchRun(target=options.target, started=time.time(), client=describe_machine(),
                   decoder=resolve_decoder(options.decoder))
    # Looked up first, as the client does: "not paired" is the first thing said.
    keys = None if options.insecure else ClientKeys.load(
        options.config_dir, options.host_label or options.target[0], options.target[0])
    for index, phase in enumerate(options.plan):
        ticker = _Ticker(progress, index, len(options.plan), phase)
        try:
            if phase.idle:
                meter = run_idle(options.target, phase.seconds, keys=keys,
                                 on_tick=ticker.meter_seen)
                figures = meter.figures()
                if not meter.estimator.exchanges:
                    figures["end"] = "the host answered no pings outside a session (an older host)"
            else:
                meter = PhaseMeter(ping_interval_s=options.ping_interval_s,
                                   warmup_s=min(phase.seconds * WARMUP_SHARE, WARMUP_MAX_S))
                ticker.meter_seen(meter)
                ticker.start()
                try:
                    figures = _stream_phase(options, phase, meter, run, log)
                finally:
                    ticker.stop()
        except RootStreamError as exc:
            # Keep what the earlier phases measured; the caller reports the rest.
            run.failure = exc
            return run
        ticker.finish(meter)
        run.phases.append((phase, figures))
        if figures.get("end") == "interrupted":
            raise KeyboardInterrupt
    return run


def _stream_phase(options: BenchOptions, phase: Phase, meter: PhaseMeter, run: BenchRun,
                  log: Callable[[str], None]) -> dict:
    handle, stats_path = tempfile.mkstemp(prefix="rootstream-bench-", suffix=".jsonl")
    os.close(handle)
    try:
        client_options = ClientOptions(
            host=options.target, present="null", seconds=phase.seconds,
            stats_interval=3600.0, stats_json=stats_path, decoder=run.decoder,
            read_markers=options.same_clock, same_clock=options.same_clock,
            client_name=options.client_name, want_size=(phase.width, phase.height),
            want_fps=phase.fps, want_bitrate_kbps=phase.bitrate_kbps,
            insecure=options.insecure, config_dir=options.config_dir,
            host_label=options.host_label, input=False)
        client = Client(client_options, services=[meter], log=log)
        result = client.run()
        own = _last_report(stats_path)
    finally:
        os.unlink(stats_path)
    if result.config is None or meter.session is None:
        raise NetworkError(f"the {phase.name} phase got no session: {result.reason}",
                           hint="is `rootstream host` running there and free?")
    if run.host is None:
        run.host = _host_description(result.config)
    figures = meter.figures()
    config = result.config
    # The host may change its rate during the session (adaptive bitrate): the
    # last rate it announced is kept beside the one it started with.
    figures["stream"] = {"width": config.width, "height": config.height, "fps": config.fps,
                         "bitrate_kbps": config.bitrate_kbps,
                         "last_bitrate_kbps": getattr(result, "bitrate_kbps", 0)
                         or config.bitrate_kbps}
    counters = client.transport.counters
    lost = counters.lost.get(PacketType.VIDEO, 0)
    figures["frames"].update(received=result.frames_received, lost=result.frames_lost)
    figures["loss"] = {
        "frames_lost": result.frames_lost,
        "datagrams_lost": lost,
        "datagram_loss_pct": round(100.0 * lost / max(counters.received + lost, 1), 3),
    }
    seconds = figures["seconds"] or phase.seconds
    figures["wire_mbps"] = round(counters.received_bytes * 8 / seconds / 1e6, 3)
    figures["end"] = result.reason
    figures["client_stats"] = own  # the client's own report, for cross-checks
    return figures


def _host_description(config) -> dict:
    return {"name": config.host_name, "encoder": config.encoder, "capture": config.capture,
            "machine": Machine(config.host_system, config.host_cpu, config.host_cpus,
                               config.host_software).as_dict()}


def _last_report(path: str) -> dict | None:
    with open(path, encoding="utf-8") as handle:
        lines = [line for line in handle if line.strip()]
    return json.loads(lines[-1]) if lines else None


class _Ticker:
    """Calls the progress callback every PROGRESS_INTERVAL_S from its own thread."""

    def __init__(self, callback, index: int, phases: int, phase: Phase):
        self._callback = callback
        self._index, self._phases, self._phase = index, phases, phase
        self._meter: PhaseMeter | None = None
        self._start = time.monotonic()
        self._last = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def meter_seen(self, meter: PhaseMeter) -> None:
        self._meter = meter
        if self._thread is None and time.monotonic() - self._last >= PROGRESS_INTERVAL_S:
            self._emit()

    def start(self) -> None:
        if self._callback is None:
            return
        self._thread = threading.Thread(target=self._loop, name="bench-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)

    def finish(self, meter: PhaseMeter) -> None:
        self._meter = meter
        self._emit()

    def _loop(self) -> None:
        while not self._stop.wait(PROGRESS_INTERVAL_S):
            self._emit()

    def _emit(self) -> None:
        self._last = time.monotonic()
        if self._callback is None or self._meter is None:
            return
        live = self._meter.snapshot()
        self._callback(Progress(self._index, self._phases, self._phase,
                                min(self._last - self._start, self._phase.seconds),
                                live["shown"], live["latency_ms"], live["rtt_ms"]))
