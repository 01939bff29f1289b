"""FEC over many frames keeps no memory: zfec handed tuples did (docs/SOAK.md).

The lossy soak's client grew ~95 bytes for every frame FEC rebuilt, for ever:
zfec 1.6 keeps part of what it is given as tuples.  ErasureCode hands it
lists; this runs the encode and rebuild of thousands of frames of changing
shapes, as a stream with loss does, and bounds what the Python heap keeps.
"""

from __future__ import annotations

import random
import tracemalloc

from rootstream.protocol.fec import ErasureCode

FRAMES = 6000
CHUNK = 1200


def _one_frame(rng: random.Random) -> None:
    k, m = rng.randrange(1, 24), rng.randrange(1, 8)
    code = ErasureCode(k, m)
    data = [bytes([rng.randrange(256)]) * CHUNK for _ in range(k)]
    parity = code.encode(data)
    shards = {i: data[i] for i in range(k)} | {k + j: parity[j] for j in range(m)}
    for _ in range(min(m, k)):  # lose what the parity can rebuild, data first
        del shards[rng.choice([i for i in shards if i < k] or list(shards))]
    assert code.decode(shards) == data


def test_encode_and_rebuild_keep_nothing():
    rng = random.Random(20)
    for _ in range(200):  # coders built, free lists filled: not growth
        _one_frame(rng)
    tracemalloc.start(1)
    try:
        reference = tracemalloc.get_traced_memory()[0]
        for _ in range(FRAMES):
            _one_frame(rng)
        kept = tracemalloc.get_traced_memory()[0] - reference
    finally:
        tracemalloc.stop()
    # Handed tuples, zfec kept ~1 MB here (over 150 bytes a frame); the bound
    # leaves room for the coders' cache meeting a shape it had not seen yet.
    assert kept < 64 * 1024, f"{kept} bytes kept over {FRAMES} frames"
