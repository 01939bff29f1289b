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


class _SentBeforeFirstPicture(ClientService):
    """How many frames the host had sent this viewer when its first picture
    showed: start-up (waiting for the first keyframe) is not what the viewers
    tests measure."""

    name = "sent-before-first"

    def __init__(self) -> None:
        self.result = None
        self.sent: int | None = None

    def frame_presented(self, frame, presented_ns: int) -> None:
        if self.sent is None and self.result is not None:
            self.sent = self.result.frames_received + self.result.frames_lost


def main() -> None:
    host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    started = time.monotonic_ns()
    startup = _SentBeforeFirstPicture()
    client = Client(ClientOptions(host=(host, port), present="null", seconds=seconds,
                                  stats_interval=60, audio=False, input=False),
                    log=lambda line: None, services=[startup])
    startup.result = client.result
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
        # From the first picture on: frames the host sent this viewer (frame ids,
        # so frames the host itself dropped before encoding do not count), and
        # how many of them it showed.
        "sent_since_first": 0 if startup.sent is None
        else result.frames_received + result.frames_lost - startup.sent + 1,
        "keyframes_received": totals.get("keyframes_received", 0),
        "resumed_at_refresh": totals.get("resumed_at_refresh", 0),
        "idr_requests": totals.get("idr_requests", 0),
        "repair_requests": totals.get("repair_requests", 0),
        "frames_repaired": totals.get("frames_repaired", 0),
        "first_picture_ms": None if result.first_picture_ns is None
        else (result.first_picture_ns - started) / 1e6,
        "longest_freeze_ms": result.longest_freeze_ms,
    }), flush=True)


if __name__ == "__main__":
    main()
