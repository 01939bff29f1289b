"""Video FEC cost per frame: Reed-Solomon at 20 % parity against plain XOR parity.

Target (issue "Keep playing on a bad network"): FEC at 20 % on a 20 Mbit/s
1080p60 stream costs under 1 ms per frame on one core.  Such a stream averages
20e6 / 60 / 8 = 42 KB per frame; a P-frame is about 20 KB and an IDR about
400 KB.

The named baseline, measured in the same run over the same bytes and the same
groups, is the cheapest FEC there is: one XOR parity shard per group (numpy),
which repairs a single loss per group.  Reed-Solomon's extra cost buys
repairing ``m`` losses per group.  Decode is measured in its worst case: ``m``
data shards lost per group (one for XOR), so every group needs arithmetic.

Run: ``pytest bench/bench_fec.py --benchmark-only``; the summary at the end
lists median and p99 per frame and the RS/XOR ratios.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from rootstream.protocol.fec import ErasureCode, plan_groups

SHARD = 1350
# name: (frame bytes, most data shards per FEC group; None = only the 255 limit).
# Encoding costs k * m * L per group, so at a fixed parity share smaller
# groups are cheaper: "-g32" is the sender's group cap in protocol/video.py.
FRAMES = {
    "p-frame-20k": (20_000, None),
    "average-42k": (41_667, None),
    "idr-400k": (400_000, None),
    "idr-400k-g32": (400_000, 32),
}
SHAPES = [(16, 4), (200, 40)]

def split(frame: bytes) -> list[bytes]:
    """Fragment payloads of SHARD bytes, the last one zero-padded as the caller does."""
    shards = [frame[i : i + SHARD] for i in range(0, len(frame), SHARD)]
    shards[-1] = shards[-1].ljust(SHARD, b"\0")
    return shards


def rs_encode(frame: bytes, plan) -> list[bytes]:
    shards = split(frame)
    parity = []
    for first, k, m in plan:
        parity += ErasureCode(k, m).encode(shards[first : first + k])
    return parity


def xor_encode(frame: bytes, plan) -> list[bytes]:
    shards = split(frame)
    parity = []
    for first, k, _ in plan:
        block = np.frombuffer(b"".join(shards[first : first + k]), np.uint8).reshape(k, SHARD)
        parity.append(np.bitwise_xor.reduce(block, axis=0).tobytes())
    return parity


def rs_received(frame: bytes, plan) -> list[dict[int, bytes]]:
    """What a receiver holds when the first m data shards of each group are lost."""
    shards = split(frame)
    parity = iter(rs_encode(frame, plan))
    groups = []
    for first, k, m in plan:
        group = dict(enumerate(shards[first : first + k]))
        group.update({k + j: next(parity) for j in range(m)})
        for lost in range(m):
            del group[lost]
        groups.append(group)
    return groups


def rs_decode(groups, plan) -> list[bytes]:
    data = []
    for group, (_, k, m) in zip(groups, plan, strict=True):
        data += ErasureCode(k, m).decode(group)
    return data


def xor_received(frame: bytes, plan) -> list[tuple[list[bytes], bytes]]:
    """Each group's surviving data shards (the first one lost) and its parity."""
    shards = split(frame)
    parity = xor_encode(frame, plan)
    return [
        (shards[first + 1 : first + k], p) for (first, k, _), p in zip(plan, parity, strict=True)
    ]


def xor_decode(groups) -> list[bytes]:
    data = []
    for survivors, parity in groups:
        block = np.frombuffer(b"".join([parity, *survivors]), np.uint8).reshape(-1, SHARD)
        data.append(np.bitwise_xor.reduce(block, axis=0).tobytes())
        data += survivors
    return data


def summary_lines(results) -> list[str]:
    """Printed by bench/conftest.py's ``bench_summary`` after the module's last case."""
    lines = ["", "FEC per frame (20 % parity, shards of 1350 bytes; XOR = 1 parity/group)"]
    for frame in FRAMES:
        for op in ("encode", "decode"):
            rs = results.get((frame, "rs", op))
            xor = results.get((frame, "xor", op))
            if rs is None or xor is None:
                continue
            lines.append(
                f"  {frame:12} {op}: RS median {rs[0] * 1e6:8.1f} us p99 {rs[1] * 1e6:8.1f} us"
                f" | XOR median {xor[0] * 1e6:7.1f} us p99 {xor[1] * 1e6:7.1f} us"
                f" | RS/XOR {rs[0] / xor[0]:5.1f}x"
            )
    for frame, coder, op in sorted(results):
        if frame.startswith("k="):
            median, p99 = results[(frame, coder, op)]
            k = int(frame.split()[0][2:])
            lines.append(
                f"  {frame:12} {op}: median {median * 1e6:8.1f} us p99 {p99 * 1e6:8.1f} us,"
                f" {k * SHARD / median / 1e6:6.0f} MB/s of data"
            )
    return lines


@pytest.mark.parametrize("op", ["encode", "decode"])
@pytest.mark.parametrize("frame_name", FRAMES)
@pytest.mark.parametrize("coder", ["rs", "xor"])
def test_frame(benchmark, bench_summary, frame_name, coder, op):
    """One whole frame: split, then parity for every group or repair of every group."""
    size, max_data = FRAMES[frame_name]
    frame = os.urandom(size)
    plan = plan_groups(len(split(frame)), max_data=max_data)
    benchmark.group = f"fec-{op}-{frame_name}"
    if op == "encode":
        coder_encode = rs_encode if coder == "rs" else xor_encode
        parity = benchmark(coder_encode, frame, plan)
        wanted = sum(m for _, _, m in plan) if coder == "rs" else len(plan)
        assert len(parity) == wanted
    else:
        if coder == "rs":
            data = benchmark(rs_decode, rs_received(frame, plan), plan)
        else:
            data = benchmark(xor_decode, xor_received(frame, plan))
        assert b"".join(data)[: len(frame)] == frame
    bench_summary.record(benchmark, frame_name, coder, op)


@pytest.mark.parametrize("op", ["encode", "decode"])
@pytest.mark.parametrize("k,m", SHAPES)
def test_group_shape(benchmark, bench_summary, k, m, op):
    """Raw throughput of one group shape; decode with the first m data shards lost."""
    code = ErasureCode(k, m)
    data = [os.urandom(SHARD) for _ in range(k)]
    parity = code.encode(data)
    survivors = {i: s for i, s in enumerate(data + parity) if i >= m}
    benchmark.group = f"fec-shape-k{k}-m{m}"
    if op == "encode":
        assert benchmark(code.encode, data) == parity
    else:
        assert benchmark(code.decode, survivors) == data
    bench_summary.record(benchmark, f"k={k} m={m}", "rs", op)
