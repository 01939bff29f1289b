"""The raw-video PODs a screen-capture consumer exchanges with PipeWire.

What we offer (EnumFormat), what we need once the format is fixed (Buffers,
Meta), and how a fixed Format reads back.  Built on rootstream._native.spa_pod;
the numbers are SPA's (spa/param/*.h, spa/buffer/meta.h), checked against the
headers by tests/test_spa_pod.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from .spa_pod import (
    CHOICE_ENUM,
    CHOICE_FLAGS,
    CHOICE_RANGE,
    PROP_FLAG_MANDATORY,
    Choice,
    Fraction,
    Id,
    Int,
    Long,
    Object,
    Prop,
    Rectangle,
    fixed,
)

TYPE_OBJECT_FORMAT = 0x40003
TYPE_OBJECT_PARAM_BUFFERS = 0x40004
TYPE_OBJECT_PARAM_META = 0x40005
PARAM_ENUM_FORMAT = 3
PARAM_FORMAT = 4
PARAM_BUFFERS = 5
PARAM_META = 6
FORMAT_MEDIA_TYPE = 1
FORMAT_MEDIA_SUBTYPE = 2
MEDIA_TYPE_VIDEO = 2
MEDIA_SUBTYPE_RAW = 1
FORMAT_VIDEO_FORMAT = 0x20001
FORMAT_VIDEO_MODIFIER = 0x20002
FORMAT_VIDEO_SIZE = 0x20003
FORMAT_VIDEO_FRAMERATE = 0x20004
FORMAT_VIDEO_MAX_FRAMERATE = 0x20005
BUFFERS_BUFFERS = 1
BUFFERS_BLOCKS = 2
BUFFERS_SIZE = 3
BUFFERS_STRIDE = 4
BUFFERS_DATATYPE = 6
META_TYPE = 1
META_SIZE = 2
META_HEADER = 1
META_VIDEO_DAMAGE = 3
META_CURSOR = 5
DATA_MEMPTR = 1
DATA_MEMFD = 2
DATA_DMABUF = 3

# DRM_FORMAT_MOD_LINEAR: the only layout a CPU can read without the GPU's help.
MODIFIER_LINEAR = 0

# spa_video_format -> our pixel format name (rootstream.convert.PIXEL_FORMATS),
# in order of preference.  xRGB has no name of its own in convert: its copy is
# shifted one byte so the rows read as RGBX (see pipewire_buffers.copy_pixels).
VIDEO_FORMATS = {8: "BGRX", 12: "BGRA", 7: "RGBX", 11: "RGBA", 9: "xRGB"}

# Sizes of the SPA metadata structs (checked against the headers by the ABI test).
META_HEADER_SIZE = 32
META_REGION_SIZE = 16
META_CURSOR_SIZE = 28
META_BITMAP_SIZE = 20
DAMAGE_REGIONS = 16
CURSOR_MAX = 256  # the largest cursor bitmap we ask room for (square, pixels)


def cursor_meta_size(width: int, height: int) -> int:
    """Bytes of a cursor meta carrying a ``width`` x ``height`` 32-bit bitmap."""
    return META_CURSOR_SIZE + META_BITMAP_SIZE + width * height * 4


@dataclass(frozen=True)
class VideoFormat:
    width: int
    height: int
    spa_format: int
    pixel_format: str  # a key's value in VIDEO_FORMATS
    modifier: int | None  # present only when the producer offers DMA-BUFs
    framerate: tuple[int, int] | None
    max_framerate: tuple[int, int] | None = None  # for variable-rate (0/1) streams


def enum_formats(max_size: int = 16384, max_fps: int | None = None) -> list[Object]:
    """The EnumFormat params to connect with: the same raw RGB formats twice, first
    with the LINEAR modifier (a producer that shares DMA-BUFs must make them linear),
    then without one (shared memory).

    ``max_fps``: the most pictures a second we will use.  Screencasts are variable
    rate (framerate 0/1) and cap themselves at the negotiated maxFramerate
    (xdg-desktop-portal-wlr spaces its screencopies by it), so asking for no more
    than the host sends keeps the compositor from copying frames we would drop."""
    formats = list(VIDEO_FORMATS)
    common = (
        Prop(FORMAT_MEDIA_TYPE, Id(MEDIA_TYPE_VIDEO)),
        Prop(FORMAT_MEDIA_SUBTYPE, Id(MEDIA_SUBTYPE_RAW)),
        Prop(FORMAT_VIDEO_FORMAT, Choice(CHOICE_ENUM, tuple(Id(f) for f in formats[:1] + formats))),
        Prop(FORMAT_VIDEO_SIZE, Choice(CHOICE_RANGE, (Rectangle(1920, 1080), Rectangle(1, 1),
                                                      Rectangle(max_size, max_size)))),
        Prop(FORMAT_VIDEO_FRAMERATE, Choice(CHOICE_RANGE, (Fraction(0, 1), Fraction(0, 1),
                                                           Fraction(1000, 1)))),
    )
    if max_fps is not None:
        rate = Fraction(max(1, min(1000, int(max_fps))), 1)
        common += (Prop(FORMAT_VIDEO_MAX_FRAMERATE,
                        Choice(CHOICE_RANGE, (rate, Fraction(1, 1), rate))),)
    linear = Prop(FORMAT_VIDEO_MODIFIER,
                  Choice(CHOICE_ENUM, (Long(MODIFIER_LINEAR), Long(MODIFIER_LINEAR))),
                  PROP_FLAG_MANDATORY)
    return [Object(TYPE_OBJECT_FORMAT, PARAM_ENUM_FORMAT, common + (linear,)),
            Object(TYPE_OBJECT_FORMAT, PARAM_ENUM_FORMAT, common)]


def parse_format(param: Object) -> VideoFormat:
    """The fixed format PipeWire chose; ValueError when it is not one we read."""
    if param.type != TYPE_OBJECT_FORMAT:
        raise ValueError(f"param object type {param.type:#x} is not a format")
    media = fixed(param.get(FORMAT_MEDIA_TYPE))
    subtype = fixed(param.get(FORMAT_MEDIA_SUBTYPE))
    if media != Id(MEDIA_TYPE_VIDEO) or subtype != Id(MEDIA_SUBTYPE_RAW):
        raise ValueError("the format is not raw video")
    spa_format = fixed(param.get(FORMAT_VIDEO_FORMAT))
    size = fixed(param.get(FORMAT_VIDEO_SIZE))
    if not isinstance(spa_format, Id) or spa_format.value not in VIDEO_FORMATS:
        raise ValueError(f"video format {spa_format} is not one of ours")
    if not isinstance(size, Rectangle) or not size.width or not size.height:
        raise ValueError(f"video size {size} is not a fixed rectangle")
    modifier = fixed(param.get(FORMAT_VIDEO_MODIFIER))
    rate = fixed(param.get(FORMAT_VIDEO_FRAMERATE))
    most = fixed(param.get(FORMAT_VIDEO_MAX_FRAMERATE))
    return VideoFormat(size.width, size.height, spa_format.value, VIDEO_FORMATS[spa_format.value],
                       modifier.value if isinstance(modifier, Long) else None,
                       (rate.num, rate.denom) if isinstance(rate, Fraction) else None,
                       (most.num, most.denom) if isinstance(most, Fraction) else None)


def buffers_param(fmt: VideoFormat, buffers: int = 4) -> Object:
    """What buffers we can read: shared memory always, DMA-BUF only when linear.

    Size and stride are left to the producer: a compositor pads rows as its
    renderer likes, and a fixed value here that differs from its own makes the
    buffer negotiation fail silently (the link never starts)."""
    types = (1 << DATA_MEMFD) | (1 << DATA_MEMPTR)
    if fmt.modifier == MODIFIER_LINEAR:
        types |= 1 << DATA_DMABUF
    return Object(TYPE_OBJECT_PARAM_BUFFERS, PARAM_BUFFERS, (
        Prop(BUFFERS_BUFFERS, Choice(CHOICE_RANGE, (Int(buffers), Int(2), Int(16)))),
        Prop(BUFFERS_BLOCKS, Int(1)),
        Prop(BUFFERS_DATATYPE, Choice(CHOICE_FLAGS, (Int(types),))),
    ))


def meta_params(cursor: bool) -> list[Object]:
    """The metadata we ask for: header (pts, seq), damage regions, and the cursor."""
    def meta(kind: int, size) -> Object:
        return Object(TYPE_OBJECT_PARAM_META, PARAM_META,
                      (Prop(META_TYPE, Id(kind)), Prop(META_SIZE, size)))
    params = [
        meta(META_HEADER, Int(META_HEADER_SIZE)),
        meta(META_VIDEO_DAMAGE, Choice(CHOICE_RANGE, (
            Int(META_REGION_SIZE * DAMAGE_REGIONS), Int(META_REGION_SIZE),
            Int(META_REGION_SIZE * DAMAGE_REGIONS)))),
    ]
    if cursor:
        params.append(meta(META_CURSOR, Choice(CHOICE_RANGE, (
            Int(cursor_meta_size(64, 64)), Int(cursor_meta_size(1, 1)),
            Int(cursor_meta_size(CURSOR_MAX, CURSOR_MAX))))))
    return params
