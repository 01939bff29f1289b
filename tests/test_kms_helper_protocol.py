"""The host <-> rootstream-kms-helper wire format: byte-exact vectors, both ways.

The C side (rootstream/_native/kms_helper.c) writes these bytes by hand; the
vectors here are what both must agree on, and tests/test_kms_helper.py checks
the compiled helper against them.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rootstream._native.drm_abi import (
    DRM_FORMAT_ARGB8888,
    DRM_FORMAT_MOD_INVALID,
    DRM_FORMAT_XRGB8888,
)
from rootstream._native.kms_helper_protocol import (
    REPLY,
    REQUEST,
    HelperProtocolError,
    Reply,
    Request,
    Status,
)

I915_X_TILED = 0x0100000000000001

REQUEST_VECTORS = {
    # "RSKH", version 1, kind 1, plane 31, holding fb 84
    "52534b48" "0100" "0100" "1f000000" "54000000": Request(31, 84),
    "52534b48" "0100" "0100" "28000000" "00000000": Request(40),
}

NEW_FB = Reply(Status.NEW, plane_id=31, fb_id=84, crtc_id=51, width=1920, height=1080,
               pixel_format=DRM_FORMAT_XRGB8888, flags=2, fd_count=1,
               pitches=(7680, 0, 0, 0), offsets=(0, 0, 0, 0), modifier=I915_X_TILED)
REPLY_VECTORS = {
    "52534b48" "0100" "0000" "1f000000" "54000000" "33000000" "80070000" "38040000"
    "58523234" "02000000" "01000000" "00000000" "00000000"
    "001e0000" "00000000" "00000000" "00000000"
    "00000000" "00000000" "00000000" "00000000"
    "0100000000000001": NEW_FB,
    "52534b48" "0100" "0100" "1f000000" "54000000" "33000000" "80070000" "38040000"
    "58523234" "02000000" "00000000" "00000000" "00000000" + "00" * 40: Reply(
        Status.UNCHANGED, 31, 84, 51, 1920, 1080, DRM_FORMAT_XRGB8888, 2),
    "52534b48" "0100" "0200" "28000000" + "00" * 76: Reply(Status.OFF, plane_id=40),
    "52534b48" "0100" "0300" + "00" * 32 + "16000000" + "00" * 44: Reply(Status.REFUSED,
                                                                        error=22),
    "52534b48" "0100" "0400" "1f000000" + "00" * 28 + "01000000" + "00" * 44: Reply(
        Status.FAILED, plane_id=31, error=1),
}


def test_sizes():
    assert REQUEST.size == 16 and REPLY.size == 88


@pytest.mark.parametrize("hex_bytes", REQUEST_VECTORS)
def test_request_vectors(hex_bytes):
    data = bytes.fromhex(hex_bytes)
    assert bytes(REQUEST_VECTORS[hex_bytes]) == data
    assert Request.parse(data) == REQUEST_VECTORS[hex_bytes]


@pytest.mark.parametrize("hex_bytes", REPLY_VECTORS)
def test_reply_vectors(hex_bytes):
    data = bytes.fromhex(hex_bytes)
    assert len(data) == REPLY.size
    assert bytes(REPLY_VECTORS[hex_bytes]) == data
    assert Reply.parse(data) == REPLY_VECTORS[hex_bytes]


@pytest.mark.parametrize("hex_bytes", REPLY_VECTORS)
def test_every_truncation_is_refused(hex_bytes):
    data = bytes.fromhex(hex_bytes)
    for cut in range(len(data)):
        with pytest.raises(HelperProtocolError, match="^kms helper reply is truncated$"):
            Reply.parse(data[:cut])
    with pytest.raises(HelperProtocolError, match="^kms helper reply is too long$"):
        Reply.parse(data + b"\0")


def test_request_truncation_is_refused():
    data = bytes(Request(31, 84))
    for cut in (*range(len(data)), len(data) + 1):
        with pytest.raises(HelperProtocolError, match="^kms helper request has the wrong size$"):
            Request.parse((data + b"\0")[:cut])


def _patched(reply: Reply, offset: int, raw: bytes) -> bytes:
    data = bytearray(bytes(reply))
    data[offset:offset + len(raw)] = raw
    return bytes(data)


@pytest.mark.parametrize(("offset", "raw", "message"), [
    (0, b"RSKX", "kms helper reply has a bad magic"),
    (4, b"\x02\x00", "kms helper speaks another protocol version"),
    (6, b"\x05\x00", "kms helper reply has an unknown status"),
    (36, b"\x05\x00\x00\x00", "kms helper reply has a bad fd count"),
    (44, b"\x01\x00\x00\x00", "kms helper reply is malformed"),
])
def test_malformed_replies(offset, raw, message):
    with pytest.raises(HelperProtocolError, match=f"^{message}$"):
        Reply.parse(_patched(NEW_FB, offset, raw))


@pytest.mark.parametrize("reply", [Reply(Status.UNCHANGED, 31, 84, fd_count=1),
                                   Reply(Status.NEW, 31, 84, fd_count=0)])
def test_fds_come_with_a_new_framebuffer_only(reply):
    with pytest.raises(HelperProtocolError, match="^kms helper reply has a bad fd count$"):
        Reply.parse(bytes(reply))


def test_modifier_counts_only_with_the_modifiers_flag():
    assert NEW_FB.framebuffer().modifier == I915_X_TILED
    plain = Reply(Status.NEW, 40, 90, 51, 64, 64, DRM_FORMAT_ARGB8888, flags=0, fd_count=1,
                  pitches=(256, 0, 0, 0), modifier=I915_X_TILED)
    fb = plain.framebuffer()
    assert fb.modifier == DRM_FORMAT_MOD_INVALID  # drm_parse.parse_fb2's rule, kept in step
    assert (fb.id, fb.width, fb.height, fb.pitches, fb.handles) == (
        90, 64, 64, (256, 0, 0, 0), (0, 0, 0, 0))


@given(st.binary(max_size=120))
def test_reply_parser_never_fails_otherwise(data):
    try:
        reply = Reply.parse(data)
    except HelperProtocolError:
        return
    assert bytes(reply) == data
