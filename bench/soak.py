"""The soak: a host and a client as real processes for many minutes; does anything grow?

    .venv/bin/python bench/soak.py --scenario steady720 --minutes 10

Starts ``rootstream host`` (test pattern, ``--audio test``) and ``rootstream
connect`` (``--present null``, sound played through SDL's disk driver into
/dev/null) on loopback, and every 10 s samples each process's RSS, open file
descriptors and threads (/proc) and the totals of its ``--stats-json``
reports.  With ``--tracemalloc`` both processes also write their Python
heap's top growth by file:line (rootstream.memtrace); with ``--smaps`` each
sample also splits RSS by kind of mapping (heap, glibc's thread arenas,
pymalloc, other anonymous maps, stacks, files) and each gets a slope; with ``--census``
both log what is alive every 30 s (rootstream.census: live blocks, pymalloc's pools,
cyclic garbage, counts by type, containers that grew).  Writes the time
series as JSON (``--out``) and prints, per process, the growth per hour of
each figure after the first minute: a least-squares slope with its 95 %
confidence interval (bench/soak_probe.py), and every counter that moved.

Scenarios (``--scenario``, or ``all``, one after another):
  steady720   1280x720 at 60 fps with sound
  steady1080  1920x1080 at 60 fps with sound
  lossy       720p60 through a LossyRelay dropping 5 % of datagrams each way
  rejoin      a host that stays up; a new client every 35 s (each stays 30 s:
              17 sessions in 10 minutes, the issue asks for 15)
  restart     a client that stays; the host killed and started again every
              2 minutes (``--restart-every S``; the client resumes after 2 s
              of silence); prints the client's RSS step per restart
  pair_input  pairing, then an encrypted session on Xvfb with keys typed
              every second (host injects with xtest into its own Xvfb)

``--tree DIR`` runs the processes from another checkout's sources (e.g. a
``git archive`` of main, for a before/after table).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak_probe import last_totals, proc_sample, smaps_kinds  # noqa: E402
from soak_report import Saved, report  # noqa: E402

SAMPLE_S = 10.0
# rejoin: a session long enough to settle (start-up, first keyframe, sound),
# short enough that 10 minutes see the 15 reconnects and more.
REJOIN_EVERY_S = 35.0
REJOIN_STAY_S = 30.0
# restart: the host killed every 2 minutes by default; --restart-every 40
# gives 14 restarts in 10 minutes, enough to see a per-restart step level off.
RESTART_EVERY_S = 120.0
SCENARIOS = ("steady720", "steady1080", "lossy", "rejoin", "restart", "pair_input")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Soak:
    """The processes of one scenario, their logs, and the samples taken of them."""

    def __init__(self, scenario: str, minutes: float, work: Path, tree: str | None,
                 tracemalloc: bool, smaps: bool = False):
        self.scenario, self.minutes, self.work = scenario, minutes, work
        self.port = free_udp_port()
        # SDL's disk driver plays in real time into a file or a pipe; a pipe
        # drained by cat keeps the disk out of it.
        sink = work / "sound.fifo"
        if not sink.exists():
            os.mkfifo(sink)
        self.drain = subprocess.Popen(["sh", "-c", f"while :; do cat '{sink}'; done >/dev/null"],
                                      start_new_session=True)
        self.env = {**os.environ, "SDL_AUDIODRIVER": "disk", "SDL_DISKAUDIOFILE": str(sink),
                    "XDG_CONFIG_HOME": str(work / "config"), "PYTHONUNBUFFERED": "1"}
        if tree:
            self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [tree,
                                                                   os.environ.get("PYTHONPATH")]))
        self.tracemalloc, self.smaps = tracemalloc, smaps
        self.census = False
        self.procs: dict[str, subprocess.Popen] = {}
        self.lives: dict[str, int] = {}  # how many processes each role has had
        self.samples: list[dict] = []
        self.events: list[dict] = []
        self.started = time.monotonic()
        self.host_args = ["--source", "test", "--size", "1280x720", "--fps", "60",
                          "--audio", "test", "--input", "none"]
        self.client_target = f"127.0.0.1:{self.port}"
        self.client_args = ["--present", "null", "--reconnect-timeout", "30"]
        self.secure = ["--insecure"]
        self.client_env: dict[str, str] = {}
        self.restart_every = RESTART_EVERY_S
        self.host_env: dict[str, str] = {}

    # -- processes ------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() - self.started

    def _start(self, role: str, argv: list[str], env: dict) -> subprocess.Popen:
        life = self.lives.get(role, 0) + 1
        self.lives[role] = life
        env = {**self.env, **env}
        # What each malloc_trim took and gave back (rootstream/allocator.py).
        env.setdefault("ROOTSTREAM_MALLOC_TRIM_LOG", str(self.work / f"{role}.{life}.trim.jsonl"))
        if self.census:
            env["ROOTSTREAM_CENSUS"] = str(self.work / f"{role}.{life}.census.jsonl")
        if self.tracemalloc:
            env["ROOTSTREAM_TRACEMALLOC"] = str(self.work / f"{role}.{life}.tracemalloc.jsonl")
        log = open(self.work / f"{role}.{life}.log", "w")
        proc = subprocess.Popen([sys.executable, "-m", "rootstream_cli", *argv], env=env,
                                stdout=log, stderr=subprocess.STDOUT, cwd=self.work)
        log.close()
        self.procs[role] = proc
        self.events.append({"t": round(self.now(), 1), "event": f"{role} started",
                            "pid": proc.pid})
        return proc

    def start_host(self) -> None:
        life = self.lives.get("host", 0) + 1
        self._start("host", ["host", "--port", str(self.port), "--bind", "127.0.0.1",
                             "--stats-interval", str(SAMPLE_S), "--stats-json",
                             str(self.work / f"host.{life}.jsonl"), *self.secure,
                             *self.host_args], self.host_env)
        self.wait_for_log("host", life, "listening on", 60)

    def start_client(self, seconds: float | None = None) -> None:
        life = self.lives.get("client", 0) + 1
        extra = ["--seconds", str(seconds)] if seconds else []
        self._start("client", ["connect", self.client_target, "--stats-interval", str(SAMPLE_S),
                               "--stats-json", str(self.work / f"client.{life}.jsonl"),
                               *self.secure, *self.client_args, *extra], self.client_env)

    def wait_for_log(self, role: str, life: int, text: str, timeout: float) -> str:
        path = self.work / f"{role}.{life}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            content = path.read_text(errors="replace")
            if text in content:
                return content
            if self.procs[role].poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{role} never said {text!r}:\n{path.read_text(errors='replace')}")

    def stop(self, role: str, how: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(role, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(how)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.events.append({"t": round(self.now(), 1), "event": f"{role} stopped",
                            "rc": proc.returncode})

    def stop_all(self) -> None:
        for role in ("client", "host"):
            self.stop(role)

    def close(self) -> None:
        self.stop_all()
        os.killpg(self.drain.pid, signal.SIGKILL)  # sh and its cat
        self.drain.wait()

    # -- samples --------------------------------------------------------------------

    def sample(self) -> None:
        # The machine's 1-minute load average: drops and allocator steps follow it.
        row: dict = {"t": round(self.now(), 1), "load": round(os.getloadavg()[0], 2)}
        for role, proc in self.procs.items():
            figures = proc_sample(proc.pid)
            if figures is None:
                continue
            life = self.lives[role]
            figures.update(pid=proc.pid, life=life,
                           totals=last_totals(str(self.work / f"{role}.{life}.jsonl")))
            if self.smaps:
                figures["smaps"] = smaps_kinds(proc.pid)
            row[role] = figures
        self.samples.append(row)

    def run_for(self, seconds: float, every=None) -> None:
        """Sample every SAMPLE_S until ``seconds`` into the scenario; ``every(t)`` between."""
        next_sample = self.now()
        while self.now() < seconds:
            if self.now() >= next_sample:
                self.sample()
                next_sample += SAMPLE_S
            if every is not None:
                every(self.now())
            time.sleep(0.2)


# -- scenarios ------------------------------------------------------------------------


def run_scenario(soak: Soak) -> None:
    total = soak.minutes * 60
    if soak.scenario == "steady1080":
        soak.host_args[soak.host_args.index("--size") + 1] = "1920x1080"
    if soak.scenario in ("steady720", "steady1080"):
        soak.start_host()
        soak.start_client()
        soak.run_for(total)
    elif soak.scenario == "lossy":
        _lossy(soak, total)
    elif soak.scenario == "rejoin":
        soak.start_host()
        state = {"next": 0.0}

        def rejoin(now: float) -> None:
            if now >= state["next"]:
                soak.stop("client")
                soak.start_client(seconds=REJOIN_STAY_S)
                state["next"] += REJOIN_EVERY_S
        soak.run_for(total, rejoin)
    elif soak.scenario == "restart":
        soak.start_host()
        soak.start_client()
        state = {"next": soak.restart_every}

        def restart(now: float) -> None:
            if now >= state["next"]:
                # Killed, as by a crash or a power cut: a host stopped cleanly
                # says bye, and a client told bye ends its session.
                soak.stop("host", signal.SIGKILL)
                soak.start_host()
                state["next"] += soak.restart_every
        soak.run_for(total, restart)
    elif soak.scenario == "pair_input":
        _pair_input(soak, total)
    else:
        raise SystemExit(f"unknown scenario {soak.scenario!r}; known: {', '.join(SCENARIOS)}")


def _lossy(soak: Soak, total: float) -> None:
    from rootstream.testing.impair import LossyRelay

    soak.start_host()
    with LossyRelay(upstream=("127.0.0.1", soak.port), loss=0.05, seed=20) as relay:
        soak.client_target = f"{relay.address[0]}:{relay.address[1]}"
        soak.start_client()
        soak.run_for(total)
        soak.events.append({"t": round(soak.now(), 1), "event": "relay",
                            "to_client_lost": relay.to_client.counters.lost,
                            "to_host_lost": relay.to_host.counters.lost})
        soak.stop_all()


def _xvfb(soak: Soak, number: int) -> tuple[subprocess.Popen, str]:
    display = f":{number}"
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"Xvfb {display} did not start")
        time.sleep(0.1)
    soak.events.append({"t": round(soak.now(), 1), "event": f"Xvfb {display}"})
    return proc, display


def _pair_input(soak: Soak, total: float) -> None:
    if not (shutil.which("Xvfb") and shutil.which("xdotool")):
        raise SystemExit("pair_input needs Xvfb and xdotool (apt install xvfb xdotool)")
    base = 90 + os.getpid() % 100
    displays = []
    try:
        host_x, host_display = _xvfb(soak, base)
        client_x, client_display = _xvfb(soak, base + 1)
        displays = [host_x, client_x]
        soak.secure = []
        soak.host_args[soak.host_args.index("--input") + 1] = "xtest"
        soak.host_args += ["--pair"]
        # Two machines: their own identities and trust stores (xtest types into
        # the host's $DISPLAY; --display is for --source x11).
        soak.host_env = {"XDG_CONFIG_HOME": str(soak.work / "host-config"),
                         "DISPLAY": host_display}
        soak.client_env = {"XDG_CONFIG_HOME": str(soak.work / "client-config"),
                           "DISPLAY": client_display, "SDL_VIDEODRIVER": "x11"}
        soak.client_args = ["--present", "sdl", "--reconnect-timeout", "30"]
        soak.start_host()
        log = soak.wait_for_log("host", 1, "pairing code", 30)
        code = re.search(r"pairing code (\d{3}[ -]?\d{3})", log).group(1)
        paired = subprocess.run(
            [sys.executable, "-m", "rootstream_cli", "pair", soak.client_target, "--code",
             code.replace(" ", "").replace("-", "")], env={**soak.env, **soak.client_env},
            capture_output=True, text=True, timeout=30)
        soak.events.append({"t": round(soak.now(), 1), "event": "paired",
                            "rc": paired.returncode, "said": paired.stdout + paired.stderr})
        if paired.returncode:
            raise RuntimeError(f"pairing failed: {paired.stdout}{paired.stderr}")
        soak.start_client()
        soak.wait_for_log("client", 1, "input goes to the host", 30)
        xenv = {**soak.env, "DISPLAY": client_display}
        window = subprocess.run(["xdotool", "search", "--onlyvisible", "--class", "."], env=xenv,
                                capture_output=True, text=True, timeout=10).stdout.split()[0]
        subprocess.run(["xdotool", "windowfocus", "--sync", window], env=xenv, timeout=10)
        state = {"next": 0.0, "typed": 0}

        def type_keys(now: float) -> None:
            if now >= state["next"]:
                subprocess.run(["xdotool", "mousemove", "--window", window, str(100 + state[
                    "typed"] % 200), "50", "key", "a", "click", "1"], env=xenv, timeout=10)
                state["typed"] += 1
                state["next"] += 1.0
        soak.run_for(total, type_keys)
        soak.events.append({"t": round(soak.now(), 1), "event": "typed", "n": state["typed"]})
    finally:
        soak.stop_all()
        for proc in displays:
            proc.terminate()
            proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", default="steady720", choices=(*SCENARIOS, "all"))
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--out", default=None,
                        help="JSON time series (default: soak-SCENARIO.json)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="both processes log their heap's top growth by file:line")
    parser.add_argument("--census", action="store_true",
                        help="both processes log live blocks, pymalloc's arenas, object counts "
                             "by type and the containers that grew (rootstream/census.py)")
    parser.add_argument("--smaps", action="store_true",
                        help="sample each process's resident memory by kind of mapping too")
    parser.add_argument("--restart-every", type=float, default=RESTART_EVERY_S, metavar="S",
                        help="restart: seconds between host restarts (default %(default)g)")
    parser.add_argument("--tree", default=None, help="run the processes from this source tree")
    parser.add_argument("--keep", default=None, help="keep logs in this directory")
    parser.add_argument("--report", default=None, metavar="JSON",
                        help="print the slopes of a saved run (its --out file) and exit")
    args = parser.parse_args()
    if args.report:
        for saved in json.loads(Path(args.report).read_text()):
            report(Saved(saved))
        return 0
    scenarios = SCENARIOS if args.scenario == "all" else (args.scenario,)
    results = []
    for scenario in scenarios:
        work = Path(args.keep) / scenario if args.keep else Path(tempfile.mkdtemp(prefix="soak-"))
        work.mkdir(parents=True, exist_ok=True)
        soak = Soak(scenario, args.minutes, work, args.tree, args.tracemalloc, args.smaps)
        soak.restart_every = args.restart_every
        soak.census = args.census
        try:
            run_scenario(soak)
        finally:
            soak.close()
        summary = report(soak)
        heap = {p.name: p.read_text().splitlines()[-1:] for p in
                sorted(work.glob("*.tracemalloc.jsonl"))}
        for name, lines in heap.items():
            if lines:
                top = json.loads(lines[0])["top"][:5]
                print(f"{name}: " + "; ".join(f"{t['where']} {t['size_diff']:+d} B" for t in top))
        results.append({**summary, "work": str(work), "events": soak.events,
                        "samples": soak.samples})
        out = args.out or f"soak-{args.scenario}.json"
        Path(out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
