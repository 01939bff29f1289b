"""Issue 15, third pass: a frame's datagrams in one sendmmsg (net/udp.py
SEND_BATCHED) against one sendto each.

    python bench/bench_send_batch.py [--frames 400] [--kib 19]

A stand-alone VideoSender (sealed, paced as the host is, 10 Mbit/s, 60 fps)
sends a synthetic frame every 5 ms to a receiving process on loopback that
opens each datagram (UdpTransport.receive).  The two ways alternate in
blocks of 50 frames so they share the machine's load.  Per frame, from the
encoded stamp: the last data datagram sent (host), and the last data
datagram received and opened (client; both processes read CLOCK_MONOTONIC).
Medians and p90 in microseconds; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import rootstream.net.udp as udp  # noqa: E402
from rootstream.crypto.handshake import SessionKeys  # noqa: E402
from rootstream.crypto.seal import SEAL_OVERHEAD  # noqa: E402
from rootstream.frame import HostStamps  # noqa: E402
from rootstream.net.sender import VideoSender  # noqa: E402
from rootstream.protocol import MAX_PAYLOAD, PacketType  # noqa: E402

BLOCK = 50


def receive_all(client: udp.UdpTransport, write_fd: int) -> None:
    """The child: (sequence, opened at) of every VIDEO datagram, until 1 s of quiet."""
    opened = []
    while (got := client.receive(timeout=1.0)) is not None:
        if got.header.ptype == PacketType.VIDEO:
            opened.append((got.header.sequence, time.monotonic_ns()))
    with os.fdopen(write_fd, "wb") as out:
        pickle.dump(opened, out)


def run(frames: int, size: int) -> dict[str, list[int]]:
    host = udp.UdpTransport(("127.0.0.1", 0), require_sealing=True)
    client = udp.UdpTransport(("127.0.0.1", 0), require_sealing=True)
    # Fixed keys, one per direction, as a handshake would leave them.
    one, other, session = os.urandom(32), os.urandom(32), os.urandom(32)
    host_keys = SessionKeys(one, other, session, bytes(32), True)
    client_keys = SessionKeys(other, one, session, bytes(32), False)
    host.secure(client.address, host_keys)
    client.secure(host.address, client_keys)
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_fd)
        receive_all(client, write_fd)
        os._exit(0)
    os.close(write_fd)
    client.close()
    destination = host.secured_peer
    sender = VideoSender(host, max_payload=MAX_PAYLOAD - SEAL_OVERHEAD, fec_share=0.2)
    calls: list[tuple[int, int]] = []  # (payloads, returned at) per send_many call
    send_many = host.send_many

    def timed_send_many(ptype, payloads, address, timestamp_ms):
        send_many(ptype, payloads, address, timestamp_ms)
        calls.append((len(payloads), time.monotonic_ns()))

    host.send_many = timed_send_many
    unit = SimpleNamespace(data=os.urandom(size), keyframe=False, refresh_start=False)
    time.sleep(0.2)  # the child is receiving
    sent: list[tuple[str, int, int, int]] = []  # (way, encoded, first data seq, last sent)
    seq = 0
    for frame in range(frames):
        way = "batched" if (frame // BLOCK) % 2 == 0 else "each"
        udp.SEND_BATCHED = way == "batched"
        now = time.monotonic_ns()
        del calls[:]
        sender.send_frame([unit], HostStamps(captured=now - 5_000_000, encoded=now),
                          [destination], bitrate_bps=10_000_000, fps=60)
        if frame == 0:  # a frame this size is not paced: one call for data, one for parity
            assert len(calls) == 2, "pick a --kib under the pacer's burst"
            data_count = calls[0][0]
        # The data's calls come first and sum to data_count payloads; parity after.
        done, last_data = 0, now
        for count, returned in calls:
            if done < data_count:
                done, last_data = done + count, returned
        sent.append((way, now, seq, last_data))
        seq += sum(count for count, _ in calls)
        time.sleep(0.005)
    host.close()
    with os.fdopen(read_fd, "rb") as source:
        opened = dict(pickle.load(source))
    os.waitpid(child, 0)
    results: dict[str, list[int]] = {}
    for way, encoded, first, last_sent in sent:
        results.setdefault(f"{way} sent", []).append((last_sent - encoded) // 1000)
        last = (first + data_count - 1) & 0xFFFF
        if last in opened:
            results.setdefault(f"{way} opened", []).append((opened[last] - encoded) // 1000)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--kib", type=int, default=19)
    args = parser.parse_args()
    for name, times in sorted(run(args.frames, args.kib * 1024).items()):
        times = sorted(times[5:])  # the first frames warm the caches
        p90 = times[int(len(times) * 0.9)]
        print(f"encoded -> last data datagram {name:15s} median {statistics.median(times)} us, "
              f"p90 {p90} us ({len(times)} frames)")


if __name__ == "__main__":
    main()
