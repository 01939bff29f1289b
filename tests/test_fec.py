"""The video erasure code: round trips, every loss pattern, the MDS property, vectors."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rootstream.errors import ProtocolError
from rootstream.protocol.fec import (
    MAX_SHARDS,
    ErasureCode,
    gf_matrix_inverse,
    gf_mul,
    parity_count,
    parity_matrix,
    plan_groups,
)


def make_shards(k: int, length: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(length) for _ in range(k)]


def all_shards(code: ErasureCode, data: list[bytes]) -> dict[int, bytes]:
    return dict(enumerate(data + code.encode(data)))


def test_small_groups_survive_every_erasure_pattern_up_to_m():
    for k in range(1, 7):
        for m in range(4):
            code = ErasureCode(k, m)
            data = make_shards(k, 37, seed=k * 10 + m)
            shards = all_shards(code, data)
            for lost in range(m + 1):
                for missing in itertools.combinations(range(k + m), lost):
                    kept = {i: s for i, s in shards.items() if i not in missing}
                    assert code.decode(kept) == data, (k, m, missing)


def test_large_groups_survive_random_subsets():
    rng = random.Random(7)
    for k, m in [(16, 4), (60, 12), (200, 40), (250, 5), (1, 254)]:
        code = ErasureCode(k, m)
        data = make_shards(k, 64, seed=k)
        shards = all_shards(code, data)
        for _ in range(6):
            kept_indices = rng.sample(range(k + m), k)
            assert code.decode({i: shards[i] for i in kept_indices}) == data


def test_losing_more_than_m_raises_not_enough():
    code = ErasureCode(10, 3)
    shards = all_shards(code, make_shards(10, 20, seed=1))
    for missing in ([0, 1, 2, 3], [9, 10, 11, 12], list(range(13))):
        kept = {i: s for i, s in shards.items() if i not in missing}
        with pytest.raises(ProtocolError, match="^not enough FEC shards$"):
            code.decode(kept)


def test_shard_length_mismatch_raises():
    code = ErasureCode(3, 2)
    with pytest.raises(ProtocolError, match="^FEC shards differ in length$"):
        code.encode([b"abc", b"abc", b"ab"])
    shards = all_shards(code, [b"abc"] * 3)
    shards[4] = b"abcd"
    del shards[0]
    with pytest.raises(ProtocolError, match="^FEC shards differ in length$"):
        code.decode(shards)


def test_bad_shapes_and_indices_raise_protocol_errors():
    with pytest.raises(ProtocolError, match="^FEC group shape is invalid$"):
        ErasureCode(0, 2)
    with pytest.raises(ProtocolError, match="^FEC group has more than 255 shards$"):
        ErasureCode(250, 6)
    code = ErasureCode(2, 2)
    with pytest.raises(ProtocolError, match="^wrong number of FEC data shards$"):
        code.encode([b"ab"])
    with pytest.raises(ProtocolError, match="^FEC shards are empty$"):
        code.encode([b"", b""])
    with pytest.raises(ProtocolError, match="^FEC shard index out of range$"):
        code.decode({0: b"ab", 4: b"ab"})
    with pytest.raises(ProtocolError, match="^FEC shard index out of range$"):
        code.decode({-1: b"ab", 1: b"ab"})


def test_accepts_any_bytes_like_and_returns_bytes():
    code = ErasureCode(2, 2)
    data = [bytearray(b"hello"), memoryview(b"world")]
    parity = code.encode(data)
    assert all(type(p) is bytes for p in parity)
    out = code.decode({1: memoryview(b"world"), 3: bytearray(parity[1])})
    assert out == [b"hello", b"world"] and all(type(s) is bytes for s in out)


def test_zero_parity_is_a_plain_pass_through():
    code = ErasureCode(4, 0)
    data = make_shards(4, 10, seed=3)
    assert code.encode(data) == []
    assert code.decode(dict(enumerate(data))) == data


def test_engine_computes_exactly_the_documented_matrix():
    # Encoding unit vectors reads the generator matrix out of the C engine:
    # data shard i is 1 at byte i and 0 elsewhere, so parity j byte i = G[j][i].
    for k, m in [(1, 2), (3, 2), (8, 4), (31, 7), (64, 13)]:
        identity = [bytes(int(row == col) for col in range(k)) for row in range(k)]
        engine = [tuple(shard) for shard in ErasureCode(k, m).encode(identity)]
        assert tuple(engine) == parity_matrix(k, m)


def test_any_k_rows_of_the_systematic_matrix_are_invertible():
    # Exhaustive for small groups, random subsets for larger ones: this is the
    # "any k shards rebuild the data" property, checked on the matrix itself.
    rng = random.Random(11)
    for k, m in [(2, 2), (3, 3), (4, 4), (5, 3), (6, 2)]:
        rows = _systematic_rows(k, m)
        for subset in itertools.combinations(range(k + m), k):
            gf_matrix_inverse([rows[i] for i in subset])
    for k, m in [(12, 6), (20, 8), (40, 10)]:
        rows = _systematic_rows(k, m)
        for _ in range(15):
            subset = rng.sample(range(k + m), k)
            gf_matrix_inverse([rows[i] for i in subset])


def _systematic_rows(k: int, m: int) -> list[tuple[int, ...]]:
    identity = [tuple(int(r == c) for c in range(k)) for r in range(k)]
    return identity + list(parity_matrix(k, m))


def test_matrix_inverse_detects_singular_matrices():
    with pytest.raises(ValueError):
        gf_matrix_inverse([[1, 2], [2, 4]])
    inverse = gf_matrix_inverse([[3, 7], [9, 1]])
    product = [
        [gf_mul(3, inverse[0][c]) ^ gf_mul(7, inverse[1][c]) for c in range(2)],
        [gf_mul(9, inverse[0][c]) ^ gf_mul(1, inverse[1][c]) for c in range(2)],
    ]
    assert product == [[1, 0], [0, 1]]


# Fixed vectors: the parity bytes are part of the wire format, so a library
# upgrade that changed them must fail here rather than break interoperation.
VECTORS = [
    (1, 2, [b"\x01\x02\x03\x04"], ["01020304", "01020304"]),
    (3, 2, [b"ROOT", b"fec!", b"\x00\xff\x10\x80"], ["1e85ed19", "4d206609"]),
    (
        4,
        3,
        [bytes(range(8)), bytes(range(8, 16)), bytes(range(16, 24)), bytes(range(24, 32))],
        ["0d0c0f0e09080b0a", "48494a4b4c4d4e4f", "9c9d9e9f98999a9b"],
    ),
]


@pytest.mark.parametrize("k,m,data,parity_hex", VECTORS)
def test_parity_vectors(k, m, data, parity_hex):
    assert [p.hex() for p in ErasureCode(k, m).encode(data)] == parity_hex


def test_parity_count_policy():
    assert parity_count(1) == 2
    assert parity_count(5) == 2
    assert parity_count(10) == 2
    assert parity_count(11) == 3
    assert parity_count(16) == 4
    assert parity_count(200) == 40
    assert parity_count(250) == 5  # clipped by the 255-shard limit
    assert parity_count(30, share=0.0) == 0
    assert parity_count(3, share=0.5, minimum=0) == 2
    for bad in [{"share": -0.1}, {"share": 1.5}, {"minimum": -1}]:
        with pytest.raises(ProtocolError, match="^FEC policy is invalid$"):
            parity_count(10, **bad)
    with pytest.raises(ProtocolError, match="^FEC group shape is invalid$"):
        parity_count(0)


def test_plan_groups_covers_every_fragment_within_the_limit():
    for count in [1, 2, 31, 212, 213, 300, 425, 1000, 5000]:
        plan = plan_groups(count)
        assert sum(k for _, k, _ in plan) == count
        first = 0
        for start, k, m in plan:
            assert start == first
            assert k + m <= MAX_SHARDS
            assert m == parity_count(k)
            first += k
        sizes = [k for _, k, _ in plan]
        assert max(sizes) - min(sizes) <= 1
    assert plan_groups(300) == [(0, 150, 30), (150, 150, 30)]
    assert plan_groups(212) == [(0, 212, 43)]
    assert plan_groups(100, max_data=32) == [(0, 25, 5), (25, 25, 5), (50, 25, 5), (75, 25, 5)]
    assert plan_groups(10, share=0.0) == [(0, 10, 0)]


def test_plan_groups_rejects_bad_input():
    with pytest.raises(ProtocolError, match="^FEC group shape is invalid$"):
        plan_groups(0)
    with pytest.raises(ProtocolError, match="^FEC policy is invalid$"):
        plan_groups(10, max_data=0)
    with pytest.raises(ProtocolError, match="^FEC policy is invalid$"):
        plan_groups(10, minimum=300)


@settings(max_examples=60, deadline=None)
@given(
    k=st.integers(1, 40),
    m=st.integers(0, 12),
    length=st.integers(1, 64),
    seed=st.integers(0, 2**32),
    data=st.data(),
)
def test_round_trip_from_any_k_shards(k, m, length, seed, data):
    code = ErasureCode(k, m)
    original = make_shards(k, length, seed)
    shards = all_shards(code, original)
    kept = data.draw(
        st.lists(st.sampled_from(range(k + m)), min_size=k, max_size=k + m, unique=True)
    )
    if len(kept) < k:
        return
    assert code.decode({i: shards[i] for i in kept}) == original


@settings(max_examples=80, deadline=None)
@given(shards=st.dictionaries(st.integers(-3, 20), st.binary(min_size=0, max_size=8), max_size=12))
def test_decode_never_fails_with_anything_but_protocol_error(shards):
    code = ErasureCode(5, 3)
    try:
        out = code.decode(shards)
    except ProtocolError:
        return
    assert len(out) == 5 and len({len(s) for s in out}) == 1
