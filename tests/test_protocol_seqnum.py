from hypothesis import given
from hypothesis import strategies as st

from rootstream.protocol import seq16_diff, seq16_newer, seq32_diff, seq32_newer, ts32_elapsed_ms


def test_sequence_comparisons_survive_the_wrap():
    assert seq16_newer(0, 0xFFFF)
    assert seq16_newer(5, 0xFFF0)
    assert not seq16_newer(0xFFFF, 0)
    assert seq16_diff(2, 0xFFFE) == 4
    assert seq16_diff(0xFFFE, 2) == -4
    assert seq16_diff(7, 7) == 0


def test_timestamp_elapsed_across_the_32_bit_wrap():
    assert ts32_elapsed_ms(10, 0xFFFFFFF6) == 20
    assert ts32_elapsed_ms(0xFFFFFFF6, 10) == -20
    assert seq32_newer(0, 0xFFFFFFFF)
    assert seq32_diff(0x80000000, 0) == 0x80000000  # the ambiguous half-way point is "ahead"


@given(st.integers(0, 0xFFFF), st.integers(-0x7FFF, 0x7FFF))
def test_seq16_diff_inverts_addition(base, delta):
    assert seq16_diff((base + delta) & 0xFFFF, base) == delta
    assert seq16_newer((base + delta) & 0xFFFF, base) == (delta > 0)


@given(st.integers(0, 0xFFFFFFFF), st.integers(-0x7FFFFFFF, 0x7FFFFFFF))
def test_seq32_diff_inverts_addition(base, delta):
    assert seq32_diff((base + delta) & 0xFFFFFFFF, base) == delta
