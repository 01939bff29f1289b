"""Rumble latency: the host's force-feedback handler to the client's rumble callback.

One process, loopback UDP, the real parts between the two ends:

- start: ``RumbleSender``'s listener is called with the monotonic time the
  host's RumbleWatcher read the game's play request (here: called directly,
  as the watcher would, since this machine has no /dev/uinput; the kernel's
  hand-over to the watcher is tested, not timed, in tests/test_rumble_uinput.py);
- the rumble CONTROL message (sent twice) leaves through a UdpTransport,
  arrives at the client's UdpTransport on its receive thread, is decoded and
  played by ``RumblePlayer`` with SDL_GameControllerRumble;
- end: the Rumble callback of an SDL virtual game controller (what a real
  pad's driver would be called with) stamps the time.

Phases: ``idle`` and ``video-10mbit``, where a thread sends 720p60-sized
VIDEO bursts (21 KB of 1200-byte datagrams 60 times a second, 10 Mbit/s) on
the same sockets, which the client's receive thread reads and drops.  That is
the network and receive-thread load of a 720p60 stream, not its encoder's
CPU.  Target (issue 19): p50 < 2 ms.

Run ``python bench/bench_rumble.py`` or ``python -m pytest bench/bench_rumble.py -s``.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_rumble_sdl import VirtualPad, sdl2  # noqa: E402

from rootstream.input.rumble import Motors  # noqa: E402
from rootstream.input.rumble_link import RumblePlayer, RumbleSender  # noqa: E402
from rootstream.net.udp import UdpTransport  # noqa: E402
from rootstream.protocol import PacketType, decode_control  # noqa: E402
from rootstream.protocol.control import Rumble  # noqa: E402

SAMPLES = 300
INTERVAL_S = 0.01


def measure(video: bool, samples: int = SAMPLES) -> np.ndarray:
    assert sdl2.SDL_Init(sdl2.SDL_INIT_GAMECONTROLLER) == 0, sdl2.SDL_GetError()
    pad = VirtualPad()
    player = RumblePlayer(lambda index: pad.handle if index == 0 else None)
    host = UdpTransport(("127.0.0.1", 0))
    client = UdpTransport(("127.0.0.1", 0))
    stop = threading.Event()
    sent = [0]  # video datagrams sent: the load really ran

    def receive() -> None:
        while not stop.is_set():
            got = client.receive(timeout=0.05)
            if got is not None and got.header.ptype == PacketType.CONTROL:
                message = decode_control(got.payload)
                if isinstance(message, Rumble):
                    player.play(message)

    def stream() -> None:
        burst = [bytes(1200)] * 18
        while not stop.wait(1 / 60):
            host.send_many(PacketType.VIDEO, burst, client.address, 0)
            sent[0] += len(burst)

    threads = [threading.Thread(target=receive, daemon=True)]
    if video:
        threads.append(threading.Thread(target=stream, daemon=True))
    for thread in threads:
        thread.start()
    sender = RumbleSender()
    sender.start(lambda ptype, payload: host.send(ptype, payload, client.address))
    latencies = []
    try:
        for i in range(samples):
            strength = 1 + i % 0xFFFE
            seen = len(pad.calls)
            start = time.monotonic_ns()
            sender._on_motors(0, Motors(strength, 0, 100), start)
            deadline = time.monotonic() + 1
            while time.monotonic() < deadline:
                if len(pad.calls) > seen and pad.calls[-1][1] == strength:
                    break
                time.sleep(0)
            else:
                raise AssertionError(f"rumble {i} never reached the pad")
            latencies.append(pad.calls[-1][0] * 1e9 - start)
            time.sleep(INTERVAL_S)
    finally:
        stop.set()
        for thread in threads:
            thread.join(2)
        host.close()
        client.close()
        pad.close()
        sdl2.SDL_QuitSubSystem(sdl2.SDL_INIT_GAMECONTROLLER)
    if video:
        assert sent[0] > samples * INTERVAL_S * 60 * 18 / 2, "the video load did not run"
    return np.array(latencies) / 1e6


def report() -> list[str]:
    lines = []
    for name, video in (("idle", False), ("video-10mbit", True)):
        ms = measure(video)
        lines.append(f"rumble {name}: p50 {np.percentile(ms, 50):.3f} ms, "
                     f"p99 {np.percentile(ms, 99):.3f} ms ({ms.size} samples)")
    return lines


def test_rumble_latency():
    lines = report()
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    print("\n".join(report()))
