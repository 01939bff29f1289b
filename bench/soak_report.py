"""bench/soak.py's report: slopes per process and figure, counters that moved,
growth per session (rejoin) and per host restart (restart).

Reads the samples a Soak took (or a saved run, ``Saved``); fits with
bench/soak_probe.py.
"""

from __future__ import annotations

from soak_probe import fit

WARMUP_S = 60.0
MIN_FIT_S = 150.0  # fit only a process sampled this long after its warm-up
# Counters that a healthy session on loopback keeps at zero (loss is expected
# only through the lossy relay; restarts make the client re-handshake).
ZERO_COUNTERS = ("malformed", "dropped_malformed", "dropped_unauthenticated", "dropped_foreign",
                 "dropped_unexpected", "audio_errors", "release_failed", "frames_lost",
                 "datagrams_lost", "audio_dropped")



def slopes(samples: list[dict], role: str) -> dict:
    """Per figure, the slope after the warm-up over the role's last process (one life)."""
    rows = [s for s in samples if role in s and s["t"] >= WARMUP_S]
    if not rows:
        return {}
    life = rows[-1][role]["life"]
    rows = [s for s in rows if s[role]["life"] == life]
    times = [s["t"] for s in rows]
    if times[-1] - times[0] < MIN_FIT_S:
        return {}  # a process that lived a minute or two: its slope says nothing
    result = {}
    for figure in ("rss_kb", "fds", "threads"):
        slope = fit(times, [s[role][figure] for s in rows])
        if slope is not None:
            result[figure] = slope
    # A leak grows all along; a high-water mark (one more frame-sized buffer
    # kept by the allocator while the machine was busy) is a step, and the
    # second half of the run is flat after it.
    late = [s for s in rows if s["t"] >= (times[0] + times[-1]) / 2]
    slope = fit([s["t"] for s in late], [s[role]["rss_kb"] for s in late])
    if slope is not None:
        result["rss_kb 2nd half"] = slope
    # --smaps: which kind of mapping the resident memory grows in.
    kinds = rows[0][role].get("smaps") or {}
    for kind in kinds:
        points = [(s["t"], s[role]["smaps"][kind]) for s in rows if s[role].get("smaps")]
        slope = fit([t for t, _ in points], [v for _, v in points])
        if slope is not None:
            result[f"rss_kb {kind}"] = slope
    return result


def moved_counters(samples: list[dict], role: str) -> dict[str, tuple[float, float]]:
    """Every counter's (first, last) over the role's last process, when it changed."""
    rows = [s for s in samples if role in s]
    if not rows:
        return {}
    life = rows[-1][role]["life"]
    rows = [s for s in rows if s[role]["life"] == life]
    first, last = rows[0][role]["totals"], rows[-1][role]["totals"]
    return {k: (first.get(k, 0), v) for k, v in last.items() if v != first.get(k, 0)}


def per_life(samples: list[dict], watcher: str, lives_of: str,
             figure: str = "rss_kb") -> list[tuple[int, int]]:
    """``watcher``'s figure when each of ``lives_of``'s processes was last seen (rejoin)."""
    last: dict[int, int] = {}
    for s in samples:
        if watcher in s and lives_of in s:
            last[s[lives_of]["life"]] = s[watcher][figure]
    return sorted(last.items())


class Saved:
    """A run read back from its JSON, with what report() needs."""

    def __init__(self, saved: dict):
        self.scenario, self.minutes = saved["scenario"], saved["minutes"]
        self.samples = saved["samples"]
        self.lives = {role: max(s[role]["life"] for s in self.samples if role in s)
                      for role in ("host", "client") if any(role in s for s in self.samples)}


def report(soak) -> dict:
    """Print and return the slopes of a Soak (bench/soak.py) or a Saved run."""
    summary: dict = {"scenario": soak.scenario, "minutes": soak.minutes, "slopes": {},
                     "counters": {}}
    print(f"\n== {soak.scenario}: {soak.minutes:g} min, {len(soak.samples)} samples, "
          f"fit after {WARMUP_S:g} s ==")
    loads = [s["load"] for s in soak.samples if "load" in s]
    if loads:
        summary["load"] = {"min": min(loads), "mean": round(sum(loads) / len(loads), 2),
                           "max": max(loads)}
        print(f"load average (1 min) min {min(loads):.2f}, mean {summary['load']['mean']:.2f}, "
              f"max {max(loads):.2f}")
    for role in ("host", "client"):
        lives = soak.lives.get(role, 0)
        fitted = slopes(soak.samples, role)
        note = f" (last of {lives} processes)" if lives > 1 else ""
        if not fitted and lives:
            print(f"{role:6} no slope: {lives} processes, none sampled "
                  f"{MIN_FIT_S:g} s after its first minute")
        for figure, slope in fitted.items():
            scale, unit = (1 / 1024, "MB") if figure.startswith("rss_kb") else (1, "")
            print(f"{role:6} {figure:15} {slope.per_hour * scale:+9.3f} {unit}/h   95% CI "
                  f"[{slope.low * scale:+.3f}, {slope.high * scale:+.3f}]  n={slope.samples}"
                  f"{note}")
            summary["slopes"][f"{role}.{figure}"] = {
                "per_hour": slope.per_hour * scale, "low": slope.low * scale,
                "high": slope.high * scale, "n": slope.samples, "unit": unit or "count"}
        moved = moved_counters(soak.samples, role)
        summary["counters"][role] = moved
        zero = {k: v for k, v in moved.items() if k in ZERO_COUNTERS}
        if zero:
            print(f"{role:6} counters that moved and should not: {zero}")
    if soak.scenario == "rejoin":
        points = per_life(soak.samples, "host", "client")
        if len(points) >= 3:
            slope = fit([p[0] for p in points], [p[1] for p in points])
            per_session = slope.per_hour / 3600  # fit() scales by 3600; undo: kB per client
            half = (slope.high - slope.low) / 7200
            print(f"host   rss per client session {per_session:+.1f} kB "
                  f"(95% CI ±{half:.1f} kB, {len(points)} sessions)")
            summary["host_rss_kb_per_session"] = {"value": per_session, "half_ci": half,
                                                  "sessions": len(points)}
            # Threads and descriptors at the same moment of every session:
            # between sessions the host has fewer (no sound thread).
            for figure in ("fds", "threads"):
                seen = sorted({v for _, v in per_life(soak.samples, "host", "client", figure)})
                print(f"host   {figure} at the end of each session: {seen}")
                summary[f"host_{figure}_per_session"] = seen
    if soak.scenario == "restart":
        # The client's RSS at the last sample of each host's life: a step per
        # restart that levels off is a high-water mark, one that does not is a leak.
        points = per_life(soak.samples, "client", "host")
        if len(points) >= 3:
            steps = [b[1] - a[1] for a, b in zip(points, points[1:], strict=False)]
            print(f"client rss at the end of each host life (kB): {[p[1] for p in points]}")
            print(f"client rss step per restart (kB): {steps}")
            slope = fit([p[0] for p in points[1:]], [p[1] for p in points[1:]])
            if slope is not None:
                print(f"client rss per restart after the first {slope.per_hour / 3600:+.1f} kB "
                      f"(95% CI ±{(slope.high - slope.low) / 7200:.1f} kB)")
            summary["client_rss_kb_per_host_life"] = points
        for figure in ("fds", "threads"):
            seen = sorted({v for _, v in per_life(soak.samples, "client", "host", figure)})
            print(f"client {figure} at the end of each host life: {seen}")
    return summary
