"""Protocol layer throughput: fragment and reassemble whole frames.

Target (issue 2): each direction at least 2 Gbit/s of frame data on one
core, so the protocol layer never limits a gigabit LAN.  The named baseline,
measured in the same run, is the least any packetiser must do: slice the
frame into 1364-byte chunks and join them back (``bytes`` slicing and
``b"".join``).  Both directions include the ROOT header and its CRC.
"""

from __future__ import annotations

import os

import pytest

from rootstream.protocol import (
    PacketType,
    Reassembler,
    VideoFragmenter,
    decode_datagram,
    encode_datagram,
)

SIZES = {"p-frame-20k": 20_000, "idr-400k": 400_000}
CHUNK = 1364


def _gbits(benchmark, size: int) -> None:
    median = benchmark.stats.stats.median
    benchmark.extra_info["Gbit/s (median)"] = round(size * 8 / median / 1e9, 2)


def _send(fragmenter: VideoFragmenter, data: bytes) -> list[bytes]:
    return [encode_datagram(PacketType.VIDEO, i, 0, p)
            for i, p in enumerate(fragmenter.fragment(data, keyframe=True))]


@pytest.mark.parametrize("name", SIZES)
def test_fragment(benchmark, name):
    data = os.urandom(SIZES[name])
    fragmenter = VideoFragmenter()
    benchmark.group = f"protocol-send-{name}"
    benchmark(_send, fragmenter, data)
    _gbits(benchmark, len(data))


@pytest.mark.parametrize("name", SIZES)
def test_fragment_with_fec(benchmark, name):
    data = os.urandom(SIZES[name])
    fragmenter = VideoFragmenter(fec_share=0.2)
    benchmark.group = f"protocol-send-{name}"
    benchmark(_send, fragmenter, data)
    _gbits(benchmark, len(data))


@pytest.mark.parametrize("name", SIZES)
def test_reassemble(benchmark, name):
    data = os.urandom(SIZES[name])
    fragmenter = VideoFragmenter()
    frames = [_send(fragmenter, data) for _ in range(2000)]
    reassembler = Reassembler()
    it = iter(frames)

    def receive():
        out = None
        for datagram in next(it):
            header, payload = decode_datagram(datagram)
            out = reassembler.push(payload, header.timestamp_ms, 0) or out
        return out

    benchmark.group = f"protocol-receive-{name}"
    benchmark.pedantic(receive, rounds=min(len(frames), 1500), iterations=1)
    assert reassembler.stats.frames_completed > 0
    _gbits(benchmark, len(data))


@pytest.mark.parametrize("name", SIZES)
def test_baseline_slice(benchmark, name):
    data = os.urandom(SIZES[name])
    benchmark.group = f"protocol-send-{name}"
    benchmark(lambda: [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)])
    _gbits(benchmark, len(data))


@pytest.mark.parametrize("name", SIZES)
def test_baseline_join(benchmark, name):
    data = os.urandom(SIZES[name])
    chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]
    benchmark.group = f"protocol-receive-{name}"
    benchmark(b"".join, chunks)
    _gbits(benchmark, len(data))
