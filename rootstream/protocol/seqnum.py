"""Serial-number arithmetic (RFC 1982) for wrapping counters.

The 16-bit sequence and the 32-bit millisecond timestamp wrap; a plain ``<``
would call the first packet after a wrap "older" than the last one before it.
Comparisons here hold as long as the two values are less than half the
counter's range apart.
"""

from __future__ import annotations


def _diff(a: int, b: int, bits: int) -> int:
    """Signed distance from b to a, in (-2**(bits-1), 2**(bits-1)]."""
    half = 1 << (bits - 1)
    d = (a - b) & ((1 << bits) - 1)
    return d - (1 << bits) if d > half else d


def seq16_diff(a: int, b: int) -> int:
    """How far 16-bit sequence ``a`` is ahead of ``b`` (negative: behind)."""
    return _diff(a, b, 16)


def seq16_newer(a: int, b: int) -> bool:
    """True when 16-bit sequence ``a`` comes after ``b``."""
    return _diff(a, b, 16) > 0


def seq32_diff(a: int, b: int) -> int:
    """How far 32-bit counter ``a`` (a timestamp, a frame id) is ahead of ``b``."""
    return _diff(a, b, 32)


def seq32_newer(a: int, b: int) -> bool:
    return _diff(a, b, 32) > 0


def ts32_elapsed_ms(later: int, earlier: int) -> int:
    """Milliseconds from ``earlier`` to ``later`` on a wrapping 32-bit ms clock."""
    return _diff(later, earlier, 32)
