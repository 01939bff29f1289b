"""The hand-written cffi declarations of rootstream._native.pipewire against the headers.

ABI mode trusts our declarations blindly: a field out of place in spa_buffer,
spa_chunk or pw_stream_events would read garbage (or call the wrong callback)
at run time.  gcc compiles PipeWire 0.3's and SPA's headers and prints every
size, field offset and constant we declared; they must match cffi's.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rootstream._native import pipewire, spa_pod, spa_video
from rootstream._native.pipewire import CDEF, ffi

HEADERS = ["pipewire/pipewire.h", "pipewire/stream.h", "spa/buffer/buffer.h",
           "spa/buffer/meta.h", "spa/param/video/raw.h", "spa/param/format.h",
           "spa/param/buffers.h", "spa/pod/pod.h", "spa/utils/type.h"]
STRUCTS = sorted({line.split()[1] for line in CDEF.splitlines()
                  if line.startswith("struct ") and line.rstrip().endswith("{")}
                 | {"spa_list", "spa_callbacks", "spa_pod", "spa_point", "spa_rectangle",
                    "spa_region", "spa_chunk", "spa_meta", "spa_meta_region"})
# our name -> the C expression it must equal
CONSTANTS = {
    "pipewire.STATE_ERROR": "PW_STREAM_STATE_ERROR",
    "pipewire.STATE_UNCONNECTED": "PW_STREAM_STATE_UNCONNECTED",
    "pipewire.STATE_PAUSED": "PW_STREAM_STATE_PAUSED",
    "pipewire.STATE_STREAMING": "PW_STREAM_STATE_STREAMING",
    "pipewire.DIRECTION_INPUT": "PW_DIRECTION_INPUT",
    "pipewire.DIRECTION_OUTPUT": "PW_DIRECTION_OUTPUT",
    "pipewire.STREAM_FLAG_AUTOCONNECT": "PW_STREAM_FLAG_AUTOCONNECT",
    "pipewire.STREAM_FLAG_MAP_BUFFERS": "PW_STREAM_FLAG_MAP_BUFFERS",
    "pipewire.STREAM_FLAG_DRIVER": "PW_STREAM_FLAG_DRIVER",
    "pipewire.STREAM_FLAG_DONT_RECONNECT": "PW_STREAM_FLAG_DONT_RECONNECT",
    "pipewire.STREAM_FLAG_ALLOC_BUFFERS": "PW_STREAM_FLAG_ALLOC_BUFFERS",
    "pipewire.VERSION_STREAM_EVENTS": "PW_VERSION_STREAM_EVENTS",
    "pipewire.VERSION_PROXY_EVENTS": "PW_VERSION_PROXY_EVENTS",
    "pipewire.ID_ANY": "PW_ID_ANY",
    "pipewire.DATA_MEMPTR": "SPA_DATA_MemPtr",
    "pipewire.DATA_MEMFD": "SPA_DATA_MemFd",
    "pipewire.DATA_DMABUF": "SPA_DATA_DmaBuf",
    "pipewire.CHUNK_FLAG_CORRUPTED": "SPA_CHUNK_FLAG_CORRUPTED",
    "pipewire.CHUNK_FLAG_EMPTY": "SPA_CHUNK_FLAG_EMPTY",
    "pipewire.META_HEADER": "SPA_META_Header",
    "pipewire.META_VIDEO_DAMAGE": "SPA_META_VideoDamage",
    "pipewire.META_CURSOR": "SPA_META_Cursor",
    "pipewire.META_HEADER_FLAG_CORRUPTED": "SPA_META_HEADER_FLAG_CORRUPTED",
    "spa_pod.TYPE_NONE": "SPA_TYPE_None", "spa_pod.TYPE_BOOL": "SPA_TYPE_Bool",
    "spa_pod.TYPE_ID": "SPA_TYPE_Id", "spa_pod.TYPE_INT": "SPA_TYPE_Int",
    "spa_pod.TYPE_LONG": "SPA_TYPE_Long", "spa_pod.TYPE_RECTANGLE": "SPA_TYPE_Rectangle",
    "spa_pod.TYPE_FRACTION": "SPA_TYPE_Fraction", "spa_pod.TYPE_OBJECT": "SPA_TYPE_Object",
    "spa_pod.TYPE_CHOICE": "SPA_TYPE_Choice",
    "spa_pod.CHOICE_NONE": "SPA_CHOICE_None", "spa_pod.CHOICE_RANGE": "SPA_CHOICE_Range",
    "spa_pod.CHOICE_STEP": "SPA_CHOICE_Step", "spa_pod.CHOICE_ENUM": "SPA_CHOICE_Enum",
    "spa_pod.CHOICE_FLAGS": "SPA_CHOICE_Flags",
    "spa_pod.PROP_FLAG_MANDATORY": "SPA_POD_PROP_FLAG_MANDATORY",
    "spa_pod.PROP_FLAG_DONT_FIXATE": "SPA_POD_PROP_FLAG_DONT_FIXATE",
    "spa_video.TYPE_OBJECT_FORMAT": "SPA_TYPE_OBJECT_Format",
    "spa_video.TYPE_OBJECT_PARAM_BUFFERS": "SPA_TYPE_OBJECT_ParamBuffers",
    "spa_video.TYPE_OBJECT_PARAM_META": "SPA_TYPE_OBJECT_ParamMeta",
    "spa_video.PARAM_ENUM_FORMAT": "SPA_PARAM_EnumFormat",
    "spa_video.PARAM_FORMAT": "SPA_PARAM_Format",
    "spa_video.PARAM_BUFFERS": "SPA_PARAM_Buffers", "spa_video.PARAM_META": "SPA_PARAM_Meta",
    "spa_video.FORMAT_MEDIA_TYPE": "SPA_FORMAT_mediaType",
    "spa_video.FORMAT_MEDIA_SUBTYPE": "SPA_FORMAT_mediaSubtype",
    "spa_video.MEDIA_TYPE_VIDEO": "SPA_MEDIA_TYPE_video",
    "spa_video.MEDIA_SUBTYPE_RAW": "SPA_MEDIA_SUBTYPE_raw",
    "spa_video.FORMAT_VIDEO_FORMAT": "SPA_FORMAT_VIDEO_format",
    "spa_video.FORMAT_VIDEO_MODIFIER": "SPA_FORMAT_VIDEO_modifier",
    "spa_video.FORMAT_VIDEO_SIZE": "SPA_FORMAT_VIDEO_size",
    "spa_video.FORMAT_VIDEO_FRAMERATE": "SPA_FORMAT_VIDEO_framerate",
    "spa_video.FORMAT_VIDEO_MAX_FRAMERATE": "SPA_FORMAT_VIDEO_maxFramerate",
    "spa_video.BUFFERS_BUFFERS": "SPA_PARAM_BUFFERS_buffers",
    "spa_video.BUFFERS_BLOCKS": "SPA_PARAM_BUFFERS_blocks",
    "spa_video.BUFFERS_SIZE": "SPA_PARAM_BUFFERS_size",
    "spa_video.BUFFERS_STRIDE": "SPA_PARAM_BUFFERS_stride",
    "spa_video.BUFFERS_DATATYPE": "SPA_PARAM_BUFFERS_dataType",
    "spa_video.META_TYPE": "SPA_PARAM_META_type", "spa_video.META_SIZE": "SPA_PARAM_META_size",
    "spa_video.META_HEADER_SIZE": "sizeof(struct spa_meta_header)",
    "spa_video.META_REGION_SIZE": "sizeof(struct spa_meta_region)",
    "spa_video.META_CURSOR_SIZE": "sizeof(struct spa_meta_cursor)",
    "spa_video.META_BITMAP_SIZE": "sizeof(struct spa_meta_bitmap)",
    **{f"spa_video.VIDEO_FORMATS[{n}]": f"SPA_VIDEO_FORMAT_{name}"
       for n, name in ((8, "BGRx"), (12, "BGRA"), (7, "RGBx"), (11, "RGBA"), (9, "xRGB"))},
}
MODULES = {"pipewire": pipewire, "spa_pod": spa_pod, "spa_video": spa_video}


def constant(name: str) -> int:
    module, _, attribute = name.partition(".")
    if "[" in attribute:  # a key of a dict: the number is the constant, if the key is there
        table, key = attribute.rstrip("]").split("[")
        return int(key) if int(key) in getattr(MODULES[module], table) else -1
    return getattr(MODULES[module], attribute)


def ours() -> list[str]:
    lines = []
    for struct in STRUCTS:
        lines.append(f"sizeof {struct} {ffi.sizeof(f'struct {struct}')}")
        lines += [f"offsetof {struct}.{field} {ffi.offsetof(f'struct {struct}', field)}"
                  for field, _ in ffi.typeof(f"struct {struct}").fields]
    lines += [f"constant {name} {constant(name) & 0xFFFFFFFFFFFFFFFF}" for name in CONSTANTS]
    return lines


def compile_against_pipewire(tmp_path: Path, body: list[str], extra: str = "") -> list[str]:
    """Build and run a C program against libpipewire-0.3's and SPA's headers; its stdout lines."""
    if shutil.which("gcc") is None or shutil.which("pkg-config") is None:
        pytest.skip("gcc or pkg-config missing: apt-get install gcc pkg-config")
    flags = subprocess.run(["pkg-config", "--cflags", "libpipewire-0.3"], capture_output=True,
                           text=True)
    if flags.returncode != 0:
        pytest.skip("PipeWire headers missing: apt-get install libpipewire-0.3-dev "
                    "libspa-0.2-dev")
    source = tmp_path / "pw.c"
    source.write_text("#include <stddef.h>\n#include <stdio.h>\n"
                      + "".join(f"#include <{h}>\n" for h in HEADERS) + extra
                      + "int main(void) {\n" + "\n".join(body) + "\nreturn 0;\n}\n")
    binary = tmp_path / "pw"
    subprocess.run(["gcc", "-std=gnu11", "-Wall", "-Werror", "-Wno-unused-function",
                    *flags.stdout.split(), "-o", str(binary), str(source)], check=True,
                   timeout=120)
    return subprocess.run([str(binary)], check=True, capture_output=True, text=True,
                          timeout=10).stdout.splitlines()


def theirs(tmp_path: Path) -> list[str]:
    body = []
    for struct in STRUCTS:
        body.append(f'printf("sizeof {struct} %zu\\n", sizeof(struct {struct}));')
        body += [f'printf("offsetof {struct}.{field} %zu\\n", '
                 f'offsetof(struct {struct}, {field}));'
                 for field, _ in ffi.typeof(f"struct {struct}").fields]
    body += [f'printf("constant {name} %llu\\n", (unsigned long long)(long long)({expr}));'
             for name, expr in CONSTANTS.items()]
    return compile_against_pipewire(tmp_path, body)


def test_declarations_match_the_headers(tmp_path):
    assert ours() == theirs(tmp_path)


def test_struct_list_covers_the_buffer_and_event_structs():
    for needed in ("spa_buffer", "spa_data", "spa_chunk", "spa_meta_header", "spa_meta_cursor",
                   "spa_meta_bitmap", "pw_buffer", "pw_stream_events", "pw_proxy_events",
                   "spa_hook"):
        assert needed in STRUCTS
