"""rootstream._native.spa_pod and spa_video: byte-exact vectors, and the same PODs built by
libspa's own spa_pod_builder from the real headers."""

from __future__ import annotations

import pytest
from test_pipewire_abi import compile_against_pipewire

from rootstream._native import spa_video as sv
from rootstream._native.spa_pod import (
    CHOICE_ENUM,
    CHOICE_FLAGS,
    PROP_FLAG_MANDATORY,
    Bool,
    Choice,
    Fraction,
    Id,
    Int,
    Long,
    Object,
    PodError,
    Prop,
    Raw,
    Rectangle,
    decode,
    encode,
)

# (value, its bytes on a little-endian machine), written out from spa/pod/pod.h's layout.
VECTORS = [
    (Id(8), "04000000 03000000 08000000 00000000"),
    (Int(-2), "04000000 04000000 feffffff 00000000"),
    (Bool(True), "04000000 02000000 01000000 00000000"),
    (Long(-1), "08000000 05000000 ffffffffffffffff"),
    (Rectangle(1920, 1080), "08000000 0a000000 80070000 38040000"),
    (Fraction(30, 1), "08000000 0b000000 1e000000 01000000"),
    # Choice: kind, flags, then one child header (size, type) for all the values.
    (Choice(CHOICE_ENUM, (Id(8), Id(12))),
     "18000000 13000000 03000000 00000000 04000000 03000000 08000000 0c000000"),
    (Choice(CHOICE_FLAGS, (Int(6),)),
     "14000000 13000000 04000000 00000000 04000000 04000000 06000000 00000000"),
    # Object: type, id, then props (key, flags, padded POD); the padding counts in its size.
    (Object(0x40005, 6, (Prop(1, Id(1)), Prop(2, Int(32), PROP_FLAG_MANDATORY))),
     "38000000 0f000000 05000400 06000000"
     "01000000 00000000 04000000 03000000 01000000 00000000"
     "02000000 08000000 04000000 04000000 20000000 00000000"),
    (Raw(8, b"hi\0"), "03000000 08000000 68690000 00000000"),
]


@pytest.mark.parametrize("value, hexbytes", VECTORS)
def test_vectors_encode_and_decode_exactly(value, hexbytes):
    data = bytes.fromhex(hexbytes.replace(" ", ""))
    assert encode(value) == data
    assert decode(data) == value
    assert encode(decode(data)) == data


@pytest.mark.parametrize("value, hexbytes", VECTORS)
def test_every_cut_inside_the_body_is_refused(value, hexbytes):
    data = bytes.fromhex(hexbytes.replace(" ", ""))
    body_end = 8 + int.from_bytes(data[:4], "little")
    for cut in range(body_end):
        with pytest.raises(PodError):
            decode(data[:cut])


def test_malformed_choices_and_objects_are_refused():
    with pytest.raises(PodError, match="share one type"):
        encode(Choice(CHOICE_ENUM, (Id(1), Int(1))))
    with pytest.raises(PodError, match="at least one value"):
        encode(Choice(CHOICE_ENUM, ()))
    bad_child = bytes.fromhex("14000000 13000000 03000000 00000000 08000000 04000000"
                              "01000000 00000000".replace(" ", ""))
    with pytest.raises(PodError, match="do not fill"):
        decode(bad_child)
    with pytest.raises(PodError, match="4-byte body"):
        decode(bytes.fromhex("04000000 05000000 01000000 00000000".replace(" ", "")))


def test_a_fixed_format_parses_into_what_we_read():
    fixed = Object(sv.TYPE_OBJECT_FORMAT, sv.PARAM_FORMAT, (
        Prop(sv.FORMAT_MEDIA_TYPE, Id(sv.MEDIA_TYPE_VIDEO)),
        Prop(sv.FORMAT_MEDIA_SUBTYPE, Id(sv.MEDIA_SUBTYPE_RAW)),
        Prop(sv.FORMAT_VIDEO_FORMAT, Id(12)),
        Prop(sv.FORMAT_VIDEO_MODIFIER, Long(0), PROP_FLAG_MANDATORY),
        Prop(sv.FORMAT_VIDEO_SIZE, Rectangle(1280, 720)),
        # A producer may leave a one-value Choice in a fixed format.
        Prop(sv.FORMAT_VIDEO_FRAMERATE, Choice(0, (Fraction(60, 1),))),
    ))
    assert sv.parse_format(decode(encode(fixed))) == sv.VideoFormat(1280, 720, 12, "BGRA", 0,
                                                                     (60, 1))
    without_size = Object(sv.TYPE_OBJECT_FORMAT, sv.PARAM_FORMAT, fixed.props[:3])
    with pytest.raises(ValueError, match="size"):
        sv.parse_format(without_size)
    nv12 = Object(sv.TYPE_OBJECT_FORMAT, sv.PARAM_FORMAT, fixed.props[:2]
                  + (Prop(sv.FORMAT_VIDEO_FORMAT, Id(23)),) + fixed.props[3:])
    with pytest.raises(ValueError, match="not one of ours"):
        sv.parse_format(nv12)


def test_dmabuf_is_offered_only_for_the_linear_modifier():
    def types(modifier):
        fmt = sv.VideoFormat(64, 48, 8, "BGRX", modifier, None)
        return sv.buffers_param(fmt).get(sv.BUFFERS_DATATYPE).values[0].value
    shm = (1 << sv.DATA_MEMFD) | (1 << sv.DATA_MEMPTR)
    assert types(None) == shm
    assert types(0) == shm | (1 << sv.DATA_DMABUF)
    assert types(0x0100000000000001) == shm  # an Intel X-tiled modifier: no DMA-BUF


# The same params, built by libspa's spa_pod_builder (C) in the order of ours() below.
C_BUILD = r"""
#define FMT_COMMON \
    SPA_FORMAT_mediaType, SPA_POD_Id(SPA_MEDIA_TYPE_video), \
    SPA_FORMAT_mediaSubtype, SPA_POD_Id(SPA_MEDIA_SUBTYPE_raw), \
    SPA_FORMAT_VIDEO_format, SPA_POD_CHOICE_ENUM_Id(6, SPA_VIDEO_FORMAT_BGRx, \
        SPA_VIDEO_FORMAT_BGRx, SPA_VIDEO_FORMAT_BGRA, SPA_VIDEO_FORMAT_RGBx, \
        SPA_VIDEO_FORMAT_RGBA, SPA_VIDEO_FORMAT_xRGB), \
    SPA_FORMAT_VIDEO_size, SPA_POD_CHOICE_RANGE_Rectangle(&SPA_RECTANGLE(1920, 1080), \
        &SPA_RECTANGLE(1, 1), &SPA_RECTANGLE(16384, 16384)), \
    SPA_FORMAT_VIDEO_framerate, SPA_POD_CHOICE_RANGE_Fraction(&SPA_FRACTION(0, 1), \
        &SPA_FRACTION(0, 1), &SPA_FRACTION(1000, 1))
#define CURSOR_SIZE(w, h) (sizeof(struct spa_meta_cursor) + sizeof(struct spa_meta_bitmap) \
                           + (w) * (h) * 4)

static void dump(const struct spa_pod *pod) {
    const unsigned char *bytes = (const unsigned char *)pod;
    for (size_t i = 0; i < SPA_ROUND_UP_N(SPA_POD_SIZE(pod), 8); i++) printf("%02x", bytes[i]);
    printf("\n");
}

static void build_all(void) {
    uint8_t buffer[4096];
    struct spa_pod_builder b;
    struct spa_pod_frame f[2];
    const struct spa_pod *pod;

    memset(buffer, 0, sizeof(buffer));
    b = SPA_POD_BUILDER_INIT(buffer, sizeof(buffer));
    spa_pod_builder_push_object(&b, &f[0], SPA_TYPE_OBJECT_Format, SPA_PARAM_EnumFormat);
    spa_pod_builder_add(&b, FMT_COMMON, 0);
    spa_pod_builder_prop(&b, SPA_FORMAT_VIDEO_modifier, SPA_POD_PROP_FLAG_MANDATORY);
    spa_pod_builder_push_choice(&b, &f[1], SPA_CHOICE_Enum, 0);
    spa_pod_builder_long(&b, 0);
    spa_pod_builder_long(&b, 0);
    spa_pod_builder_pop(&b, &f[1]);
    dump(spa_pod_builder_pop(&b, &f[0]));

    memset(buffer, 0, sizeof(buffer));
    b = SPA_POD_BUILDER_INIT(buffer, sizeof(buffer));
    dump(spa_pod_builder_add_object(&b, SPA_TYPE_OBJECT_Format, SPA_PARAM_EnumFormat,
                                    FMT_COMMON));

    memset(buffer, 0, sizeof(buffer));
    b = SPA_POD_BUILDER_INIT(buffer, sizeof(buffer));
    dump(spa_pod_builder_add_object(&b, SPA_TYPE_OBJECT_ParamBuffers, SPA_PARAM_Buffers,
        SPA_PARAM_BUFFERS_buffers, SPA_POD_CHOICE_RANGE_Int(4, 2, 16),
        SPA_PARAM_BUFFERS_blocks, SPA_POD_Int(1),
        SPA_PARAM_BUFFERS_dataType, SPA_POD_CHOICE_FLAGS_Int(
            (1 << SPA_DATA_MemFd) | (1 << SPA_DATA_MemPtr) | (1 << SPA_DATA_DmaBuf))));

    memset(buffer, 0, sizeof(buffer));
    b = SPA_POD_BUILDER_INIT(buffer, sizeof(buffer));
    dump(spa_pod_builder_add_object(&b, SPA_TYPE_OBJECT_ParamMeta, SPA_PARAM_Meta,
        SPA_PARAM_META_type, SPA_POD_Id(SPA_META_Header),
        SPA_PARAM_META_size, SPA_POD_Int(sizeof(struct spa_meta_header))));

    memset(buffer, 0, sizeof(buffer));
    b = SPA_POD_BUILDER_INIT(buffer, sizeof(buffer));
    dump(spa_pod_builder_add_object(&b, SPA_TYPE_OBJECT_ParamMeta, SPA_PARAM_Meta,
        SPA_PARAM_META_type, SPA_POD_Id(SPA_META_VideoDamage),
        SPA_PARAM_META_size, SPA_POD_CHOICE_RANGE_Int(sizeof(struct spa_meta_region) * 16,
            sizeof(struct spa_meta_region), sizeof(struct spa_meta_region) * 16)));

    memset(buffer, 0, sizeof(buffer));
    b = SPA_POD_BUILDER_INIT(buffer, sizeof(buffer));
    dump(spa_pod_builder_add_object(&b, SPA_TYPE_OBJECT_ParamMeta, SPA_PARAM_Meta,
        SPA_PARAM_META_type, SPA_POD_Id(SPA_META_Cursor),
        SPA_PARAM_META_size, SPA_POD_CHOICE_RANGE_Int(CURSOR_SIZE(64, 64), CURSOR_SIZE(1, 1),
            CURSOR_SIZE(256, 256))));

    /* A fixed format as a producer sends it; parsed, not built, on our side. */
    memset(buffer, 0, sizeof(buffer));
    b = SPA_POD_BUILDER_INIT(buffer, sizeof(buffer));
    pod = spa_pod_builder_add_object(&b, SPA_TYPE_OBJECT_Format, SPA_PARAM_Format,
        SPA_FORMAT_mediaType, SPA_POD_Id(SPA_MEDIA_TYPE_video),
        SPA_FORMAT_mediaSubtype, SPA_POD_Id(SPA_MEDIA_SUBTYPE_raw),
        SPA_FORMAT_VIDEO_format, SPA_POD_Id(SPA_VIDEO_FORMAT_xRGB),
        SPA_FORMAT_VIDEO_size, SPA_POD_Rectangle(&SPA_RECTANGLE(1280, 720)),
        SPA_FORMAT_VIDEO_framerate, SPA_POD_Fraction(&SPA_FRACTION(0, 1)));
    dump(pod);
}
"""


def ours() -> list[str]:
    linear = sv.VideoFormat(64, 48, 8, "BGRX", 0, None)
    params = sv.enum_formats() + [sv.buffers_param(linear)] + sv.meta_params(cursor=True)
    return [encode(p).hex() for p in params]


def test_our_params_are_byte_for_byte_libspas(tmp_path):
    extra = "#include <string.h>\n#include <spa/pod/builder.h>\n" + C_BUILD
    lines = compile_against_pipewire(tmp_path, ["build_all();"], extra)
    assert lines[:-1] == ours()
    fixed = sv.parse_format(decode(bytes.fromhex(lines[-1])))
    assert fixed == sv.VideoFormat(1280, 720, 9, "xRGB", None, (0, 1))
    assert encode(decode(bytes.fromhex(lines[-1]))).hex() == lines[-1]
