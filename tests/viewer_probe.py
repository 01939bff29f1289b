"""One viewer in a process of its own, for the many-viewers tests and bench.

``python tests/viewer_probe.py HOST PORT SECONDS`` runs a real client
(encrypted with this machine's identity, decoding with FFmpeg, the null
presenter reading the test pattern's frame numbers) and prints what it saw
as one JSON line: frames shown, received and lost, whether every picture
was intact, the keyframes that reached it, and when its first picture came.
Other tests start it with subprocess and may kill it with SIGKILL.
"""

from __future__ import annotations

import json
import sys
import time

from rootstream.client import Client, ClientOptions
from rootstream.session import ClientService


class _FirstPicture(ClientService):
    """Notes when the first picture was shown."""

    name = "first-picture"

    def __init__(self) -> None:
        self.first_ns: int | None = None

    def frame_presented(self, frame, presented_ns: int) -> None:
        if self.first_ns is None:
            self.first_ns = presented_ns


def main() -> None:
    host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    started = time.monotonic_ns()
    first = _FirstPicture()
    client = Client(ClientOptions(host=(host, port), present="null", seconds=seconds,
                                  stats_interval=60, audio=False, input=False),
                    log=lambda line: None, services=[first])
    client.run()
    result, totals = client.result, client.stats.totals
    markers = list(result.markers)
    print(json.dumps({
        "reason": result.reason,
        "presented": result.frames_presented,
        "received": result.frames_received,
        "lost": result.frames_lost,
        "intact": (totals.get("corrupt_pictures", 0) == 0
                   and len(markers) == min(result.frames_presented, len(markers))
                   and all(b > a for a, b in zip(markers, markers[1:], strict=False))),
        "keyframes_received": totals.get("keyframes_received", 0),
        "resumed_at_refresh": totals.get("resumed_at_refresh", 0),
        "idr_requests": totals.get("idr_requests", 0),
        "first_picture_ms": None if first.first_ns is None else (first.first_ns - started) / 1e6,
        "longest_freeze_ms": result.longest_freeze_ms,
    }), flush=True)


if __name__ == "__main__":
    main()
