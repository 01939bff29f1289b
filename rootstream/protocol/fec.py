"""Forward error correction for video: a systematic Reed-Solomon erasure code.

A frame's fragments are grouped; each group of ``k`` equal-length data shards
gets ``m`` parity shards, and any ``k`` of the ``k + m`` shards rebuild the
data.  Losing a few datagrams therefore costs nothing instead of a whole frame
plus an IDR round trip.

The code is fixed by :func:`parity_matrix` (the wire format depends on it):
arithmetic in GF(2^8) with the polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11d),
generator alpha = 2.  Take the (k + m) x k Vandermonde matrix V whose rows are
the powers 0..k-1 of the points 0, alpha^0, alpha^1, ..., alpha^(k+m-2), and
multiply it on the right by the inverse of its top k x k block.  The top
becomes the identity (so data shards travel unchanged) and the bottom m rows
are the parity coefficients.  Every k rows of V are independent because the
points are distinct, so every k rows of the systematic matrix are too: that is
the "any k shards" guarantee.

The arithmetic runs in zfec (a C Reed-Solomon coder on PyPI) which builds
exactly this matrix; tests pin zfec against :func:`parity_matrix` and fixed
vectors so a change in the library cannot silently change the wire format.
Pure-Python or numpy GF(256) table lookups measured 8-10x slower than zfec,
which is too slow for a 60 fps stream (see bench/bench_fec.py).

zfec is always handed lists, never tuples: given tuples (the shards or their
indices), zfec 1.6 leaves some of what it was given allocated for good.
Measured (docs/SOAK.md): at 5 % loss the client's rebuilds kept ~95 bytes per
recovered frame, and the host's encodes ~1.5 bytes per frame, for ever; with
lists nothing stays.  Its decoder also reorders the list of shards in place,
so that list is always one made for the call.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import zfec

from rootstream.errors import ProtocolError

# GF(256) has 255 non-zero elements, so a Vandermonde code has at most 255
# distinct evaluation points (0 and the 254 useful powers of alpha).
MAX_SHARDS = 255

DEFAULT_SHARE = 0.2
DEFAULT_MINIMUM = 2

_POLYNOMIAL = 0x11D


def _build_tables() -> tuple[tuple[int, ...], tuple[int, ...]]:
    exp = [0] * 510
    log = [0] * 256
    value = 1
    for power in range(255):
        exp[power] = value
        log[value] = power
        value <<= 1
        if value & 0x100:
            value ^= _POLYNOMIAL
    # Doubling the table lets a product index exp[log a + log b] without a modulo.
    exp[255:510] = exp[0:255]
    return tuple(exp), tuple(log)


_EXP, _LOG = _build_tables()


def gf_mul(a: int, b: int) -> int:
    """Product of two GF(256) elements (reference arithmetic, not the hot path)."""
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def gf_pow(a: int, exponent: int) -> int:
    """``a`` to a non-negative power, with 0^0 == 1 as a Vandermonde row needs."""
    if exponent == 0:
        return 1
    if a == 0:
        return 0
    return _EXP[(_LOG[a] * exponent) % 255]


def gf_inverse(a: int) -> int:
    if a == 0:
        raise ZeroDivisionError("0 has no inverse in GF(256)")
    return _EXP[255 - _LOG[a]]


def gf_matrix_inverse(rows: Sequence[Sequence[int]]) -> list[list[int]]:
    """Inverse of a square GF(256) matrix by Gauss-Jordan elimination.

    Raises ValueError when the matrix is singular; tests use this to prove that
    every k rows of the systematic matrix are independent.
    """
    size = len(rows)
    work = [
        list(row) + [int(col == index) for col in range(size)] for index, row in enumerate(rows)
    ]
    for col in range(size):
        pivot = next((r for r in range(col, size) if work[r][col]), None)
        if pivot is None:
            raise ValueError("matrix is singular over GF(256)")
        work[col], work[pivot] = work[pivot], work[col]
        scale = gf_inverse(work[col][col])
        pivot_row = [gf_mul(scale, value) for value in work[col]]
        work[col] = pivot_row
        for r in range(size):
            factor = work[r][col]
            if r != col and factor:
                work[r] = [v ^ gf_mul(factor, p) for v, p in zip(work[r], pivot_row, strict=False)]
    return [row[size:] for row in work]


@functools.lru_cache(maxsize=32)
def parity_matrix(k: int, m: int) -> tuple[tuple[int, ...], ...]:
    """The m x k parity coefficients: parity[j] = XOR_i coeff[j][i] * data[i].

    This is the normative definition of the code (see the module docstring);
    it is pure Python and O(k^3), for tests and documentation only.
    """
    _check_shape(k, m)
    points = [0] + [_EXP[power] for power in range(k + m - 1)]
    vandermonde = [[gf_pow(point, col) for col in range(k)] for point in points]
    top_inverse = gf_matrix_inverse(vandermonde[:k])
    result = []
    for row in vandermonde[k:]:
        coefficients = []
        for col in range(k):
            acc = 0
            for t in range(k):
                acc ^= gf_mul(row[t], top_inverse[t][col])
            coefficients.append(acc)
        result.append(tuple(coefficients))
    return tuple(result)


def _check_shape(k: int, m: int) -> None:
    if not isinstance(k, int) or not isinstance(m, int) or k < 1 or m < 0:
        raise ProtocolError("FEC group shape is invalid", details=[f"k={k!r} m={m!r}"])
    if k + m > MAX_SHARDS:
        raise ProtocolError(
            "FEC group has more than 255 shards",
            hint="split the frame with plan_groups()",
            details=[f"k={k} m={m}"],
        )


@functools.lru_cache(maxsize=128)
def _coders(k: int, m: int) -> tuple[zfec.Encoder, zfec.Decoder]:
    # Building a coder inverts a matrix; a stream reuses a handful of shapes,
    # so keep them instead of paying that on every frame.
    return zfec.Encoder(k, k + m), zfec.Decoder(k, k + m)


class ErasureCode:
    """k data shards + m parity shards; any k of them rebuild the data.

    Construction is cheap (the underlying coders are cached per (k, m)), so
    callers may build one per FEC group.  Shards are any bytes-like objects of
    one common, non-zero length; the caller pads the last data shard.
    """

    __slots__ = ("_decoder", "_encoder", "_parity_indices", "k", "m")

    def __init__(self, k: int, m: int):
        _check_shape(k, m)
        self.k = k
        self.m = m
        self._encoder, self._decoder = _coders(k, m)
        self._parity_indices = tuple(range(k, k + m))

    @property
    def n(self) -> int:
        return self.k + self.m

    def __repr__(self) -> str:
        return f"ErasureCode(k={self.k}, m={self.m})"

    def encode(self, data_shards: Sequence[bytes]) -> list[bytes]:
        """The m parity shards for exactly k equal-length data shards."""
        if len(data_shards) != self.k:
            raise ProtocolError(
                "wrong number of FEC data shards",
                details=[f"expected {self.k}, got {len(data_shards)}"],
            )
        _common_length(data_shards)
        if self.m == 0:
            return []
        # Lists, not tuples: see the module's docstring (zfec keeps tuples' memory).
        return list(self._encoder.encode(list(data_shards), list(self._parity_indices)))

    def decode(self, shards: Mapping[int, bytes]) -> list[bytes]:
        """The k data shards from any k shards keyed by index 0..k+m-1.

        Raises ProtocolError("not enough FEC shards") with fewer than k.
        """
        for index in shards:
            if not isinstance(index, int) or not 0 <= index < self.n:
                raise ProtocolError(
                    "FEC shard index out of range", details=[f"index={index!r} n={self.n}"]
                )
        if len(shards) < self.k:
            raise ProtocolError(
                "not enough FEC shards", details=[f"have {len(shards)}, need {self.k} of {self.n}"]
            )
        _common_length(shards.values())
        if all(index in shards for index in range(self.k)):
            # Nothing lost among the data shards: no arithmetic needed.
            return [bytes(shards[index]) for index in range(self.k)]
        # Prefer data shards: each one used is a row of the identity, which
        # keeps the matrix zfec has to invert small.
        chosen = sorted(shards)[: self.k]
        # Lists made for this call (zfec keeps tuples' memory and reorders the shards).
        blocks = [shards[index] for index in chosen]
        return [bytes(block) for block in self._decoder.decode(blocks, chosen)]


def _common_length(shards) -> int:
    length = None
    for shard in shards:
        size = len(shard)
        if length is None:
            length = size
        elif size != length:
            raise ProtocolError("FEC shards differ in length", details=[f"{length} != {size}"])
    if not length:
        raise ProtocolError("FEC shards are empty")
    return length


def parity_count(k: int, share: float = DEFAULT_SHARE, minimum: int = DEFAULT_MINIMUM) -> int:
    """How many parity shards protect k data shards under the default policy.

    About ``share`` of k rounded up, but at least ``minimum`` (a small frame
    with a single parity shard would not survive the loss of two datagrams,
    which on a bad link is common), never so many that k + m exceeds 255.
    ``share == 0`` turns FEC off.
    """
    _check_policy(share, minimum)
    if k < 1 or k >= MAX_SHARDS:
        raise ProtocolError("FEC group shape is invalid", details=[f"k={k!r}"])
    if share == 0:
        return 0
    # Subtracting a tiny epsilon keeps 0.2 * 10 == 2.0000000000000004 at 2.
    wanted = max(minimum, math.ceil(k * share - 1e-9))
    return min(wanted, MAX_SHARDS - k)


def _check_policy(share: float, minimum: int) -> None:
    if not 0.0 <= share <= 1.0 or minimum < 0:
        raise ProtocolError(
            "FEC policy is invalid", details=[f"share={share!r} minimum={minimum!r}"]
        )


def plan_groups(
    fragment_count: int,
    share: float = DEFAULT_SHARE,
    minimum: int = DEFAULT_MINIMUM,
    max_data: int | None = None,
) -> list[tuple[int, int, int]]:
    """Split a frame's data fragments into FEC groups: [(first, k, m), ...].

    Fragments ``first .. first + k - 1`` form one group protected by m parity
    shards.  Groups are as few as the 255-shard limit (or ``max_data`` data
    shards per group, if smaller) allows, and balanced so their sizes differ
    by at most one: a runt last group would get proportionally weak
    protection.  Sender and receiver computing the plan from the same inputs
    get the same groups.
    """
    _check_policy(share, minimum)
    if not isinstance(fragment_count, int) or fragment_count < 1:
        raise ProtocolError("FEC group shape is invalid", details=[f"fragments={fragment_count!r}"])
    largest = _largest_group(share, minimum)
    if max_data is not None:
        if max_data < 1:
            raise ProtocolError("FEC policy is invalid", details=[f"max_data={max_data!r}"])
        largest = min(largest, max_data)
    groups = -(-fragment_count // largest)
    base, extra = divmod(fragment_count, groups)
    plan = []
    first = 0
    for index in range(groups):
        k = base + (1 if index < extra else 0)
        plan.append((first, k, parity_count(k, share, minimum)))
        first += k
    return plan


@functools.lru_cache(maxsize=64)
def _largest_group(share: float, minimum: int) -> int:
    """The biggest k whose full parity (not clipped by the limit) still fits."""
    for k in range(MAX_SHARDS - 1, 0, -1):
        wanted = 0 if share == 0 else max(minimum, math.ceil(k * share - 1e-9))
        if k + wanted <= MAX_SHARDS:
            return k
    raise ProtocolError("FEC policy is invalid", details=[f"share={share!r} minimum={minimum!r}"])
