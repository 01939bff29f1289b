"""The wire format between the host and rootstream-kms-helper (kms_helper.c).

One AF_UNIX SOCK_SEQPACKET socket, one message per request and per reply, all
integers little-endian, so a message is the same bytes on every machine and
tests pin them with byte-exact vectors:

request, 16 bytes (host -> helper)::

    0  4  magic "RSKH"
    4  2  version (1)
    6  2  kind (1: the framebuffer a plane shows)
    8  4  plane id
    12 4  fb id the host already holds for that plane (0: none)

reply, 88 bytes (helper -> host), with one dma-buf fd per framebuffer plane
attached (SCM_RIGHTS) when the status is NEW::

    0  4  magic "RSKH"         40 4  errno (FAILED, REFUSED), else 0
    4  2  version (1)          44 4  reserved, 0
    6  2  status               48 16 pitches[4]
    8  4  plane id             64 16 offsets[4]
    12 4  fb id                80 8  modifier (meaningful with DRM_MODE_FB_MODIFIERS)
    16 4  crtc id
    20 4  width       24 4  height      28 4  fourcc
    32 4  GETFB2 flags (DRM_MODE_FB_MODIFIERS, DRM_MODE_FB_INTERLACED)
    36 4  number of fds attached

Nothing here touches a socket; rootstream.capture.kms_grant does.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from rootstream._native.drm_abi import DRM_FORMAT_MOD_INVALID, DRM_MODE_FB_MODIFIERS
from rootstream._native.drm_parse import DrmError, Framebuffer

MAGIC = b"RSKH"
VERSION = 1
KIND_FRAMEBUFFER = 1
MAX_PLANES = 4

REQUEST = struct.Struct("<4sHHII")
REPLY = struct.Struct("<4sHHIIIIIIIIiI4I4IQ")
assert REQUEST.size == 16 and REPLY.size == 88  # kms_helper.c's REQUEST_SIZE, REPLY_SIZE


class HelperProtocolError(DrmError):
    """A message from the helper does not follow this format."""


class Status(enum.IntEnum):
    NEW = 0  # a framebuffer not sent before: fds attached
    UNCHANGED = 1  # the fb the host named is still the one shown: no fds
    OFF = 2  # the plane shows nothing (display off, cursor hidden)
    REFUSED = 3  # the request was malformed (the helper logged why)
    FAILED = 4  # the kernel said no: ``error`` is its errno


@dataclass(frozen=True, slots=True)
class Request:
    plane_id: int
    known_fb_id: int = 0
    kind: int = KIND_FRAMEBUFFER
    version: int = VERSION

    def __bytes__(self) -> bytes:
        return REQUEST.pack(MAGIC, self.version, self.kind, self.plane_id, self.known_fb_id)

    @classmethod
    def parse(cls, data: bytes) -> Request:
        if len(data) != REQUEST.size:
            raise HelperProtocolError("kms helper request has the wrong size")
        magic, version, kind, plane_id, known = REQUEST.unpack(data)
        if magic != MAGIC:
            raise HelperProtocolError("kms helper request has a bad magic")
        return cls(plane_id, known, kind, version)


@dataclass(frozen=True, slots=True)
class Reply:
    status: Status
    plane_id: int = 0
    fb_id: int = 0
    crtc_id: int = 0
    width: int = 0
    height: int = 0
    pixel_format: int = 0
    flags: int = 0
    fd_count: int = 0
    error: int = 0
    pitches: tuple[int, int, int, int] = (0, 0, 0, 0)
    offsets: tuple[int, int, int, int] = (0, 0, 0, 0)
    modifier: int = 0

    def __bytes__(self) -> bytes:
        return REPLY.pack(MAGIC, VERSION, self.status, self.plane_id, self.fb_id, self.crtc_id,
                          self.width, self.height, self.pixel_format, self.flags, self.fd_count,
                          self.error, 0, *self.pitches, *self.offsets, self.modifier)

    @classmethod
    def parse(cls, data: bytes) -> Reply:
        if len(data) < REPLY.size:
            raise HelperProtocolError("kms helper reply is truncated")
        if len(data) > REPLY.size:
            raise HelperProtocolError("kms helper reply is too long")
        (magic, version, status, plane_id, fb_id, crtc_id, width, height, fourcc, flags,
         fd_count, error, reserved, *rest) = REPLY.unpack(data)
        if magic != MAGIC:
            raise HelperProtocolError("kms helper reply has a bad magic")
        if version != VERSION:
            raise HelperProtocolError("kms helper speaks another protocol version")
        if status not in Status.__members__.values():
            raise HelperProtocolError("kms helper reply has an unknown status")
        if fd_count > MAX_PLANES or bool(fd_count) != (status == Status.NEW):
            raise HelperProtocolError("kms helper reply has a bad fd count")
        if reserved:
            raise HelperProtocolError("kms helper reply is malformed")
        return cls(Status(status), plane_id, fb_id, crtc_id, width, height, fourcc, flags,
                   fd_count, error, tuple(rest[0:4]), tuple(rest[4:8]), rest[8])

    def framebuffer(self) -> Framebuffer:
        """The GETFB2 description the helper read; handles stay 0 (it closed them:
        the buffer is reached through the fds that came with the reply)."""
        # The same rule as drm_parse.parse_fb2: the modifier field means
        # something only with DRM_MODE_FB_MODIFIERS; without it the layout is
        # unknown, never assumed linear.
        modifier = self.modifier if self.flags & DRM_MODE_FB_MODIFIERS else DRM_FORMAT_MOD_INVALID
        return Framebuffer(self.fb_id, self.width, self.height, self.pixel_format,
                           (0, 0, 0, 0), self.pitches, self.offsets, modifier)


__all__ = ["HelperProtocolError", "KIND_FRAMEBUFFER", "MAGIC", "REPLY", "REQUEST", "Reply",
           "Request", "Status", "VERSION"]
