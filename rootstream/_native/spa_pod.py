"""SPA POD values ("plain old data"), serialised and parsed in pure Python.

PipeWire describes formats, buffer requirements and metadata as PODs.  The C
library builds them with header-inline ``spa_pod_builder_*`` functions that
ABI-mode cffi cannot call, so the bytes are written here.  Only the types a
video consumer needs are modelled; anything else parses into ``Raw`` and
serialises back unchanged, so ``encode(decode(b)) == b`` for every well-formed
POD.  tests/test_spa_pod.py pins byte-exact vectors and compares them with
what libspa's own builder produces from the real headers.

Wire layout (spa/pod/pod.h): a POD is ``uint32 size, uint32 type`` then
``size`` body bytes, then zero padding to a multiple of 8.  The padding of a
child counts into its parent's size.  Values are host-endian (PipeWire never
crosses machines).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

# enum spa_type (spa/utils/type.h)
TYPE_NONE = 1
TYPE_BOOL = 2
TYPE_ID = 3
TYPE_INT = 4
TYPE_LONG = 5
TYPE_RECTANGLE = 10
TYPE_FRACTION = 11
TYPE_OBJECT = 15
TYPE_CHOICE = 19

# enum spa_choice_type (spa/pod/pod.h)
CHOICE_NONE = 0
CHOICE_RANGE = 1
CHOICE_STEP = 2
CHOICE_ENUM = 3
CHOICE_FLAGS = 4

# spa_pod_prop flags
PROP_FLAG_MANDATORY = 1 << 3
PROP_FLAG_DONT_FIXATE = 1 << 4

_HEADER = struct.Struct("=II")
_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")
_I64 = struct.Struct("=q")
_PAIR = struct.Struct("=II")
assert _HEADER.size == 8


class PodError(ValueError):
    """Bytes that are not a well-formed POD of a type we read."""


@dataclass(frozen=True)
class Bool:
    value: bool


@dataclass(frozen=True)
class Id:
    value: int


@dataclass(frozen=True)
class Int:
    value: int


@dataclass(frozen=True)
class Long:
    value: int


@dataclass(frozen=True)
class Rectangle:
    width: int
    height: int


@dataclass(frozen=True)
class Fraction:
    num: int
    denom: int


@dataclass(frozen=True)
class Raw:
    """A POD of a type not modelled here, kept as its body bytes."""
    type: int
    body: bytes


@dataclass(frozen=True)
class Choice:
    """A set of alternatives of one type: None (one value), Range (default, min, max),
    Step, Enum (default, then the options) or Flags."""
    kind: int
    values: tuple
    flags: int = 0


@dataclass(frozen=True)
class Prop:
    key: int
    value: object
    flags: int = 0


@dataclass(frozen=True)
class Object:
    type: int  # e.g. SPA_TYPE_OBJECT_Format
    id: int  # e.g. SPA_PARAM_EnumFormat
    props: tuple[Prop, ...] = field(default=())

    def get(self, key: int):
        """The value of property ``key``, or None."""
        for prop in self.props:
            if prop.key == key:
                return prop.value
        return None


# The fixed-size value types: class -> (spa type, body layout).  Each body is the
# dataclass's fields in order (Bool travels as an int32).
_SCALARS = {
    Bool: (TYPE_BOOL, _I32),
    Id: (TYPE_ID, _U32),
    Int: (TYPE_INT, _I32),
    Long: (TYPE_LONG, _I64),
    Rectangle: (TYPE_RECTANGLE, _PAIR),
    Fraction: (TYPE_FRACTION, _PAIR),
}
_BY_TYPE = {spa_type: (cls, layout) for cls, (spa_type, layout) in _SCALARS.items()}


def _pad8(data: bytes) -> bytes:
    return data + bytes(-len(data) % 8)


def _body(value) -> tuple[int, bytes]:
    """(spa type, unpadded body) of ``value``."""
    scalar = _SCALARS.get(type(value))
    if scalar is not None:
        spa_type, layout = scalar
        fields = [int(getattr(value, name)) for name in value.__dataclass_fields__]
        return spa_type, layout.pack(*fields)
    if isinstance(value, Choice):
        if not value.values:
            raise PodError("a Choice needs at least one value")
        bodies = [_body(v) for v in value.values]
        child_type, first = bodies[0]
        if any(t != child_type or len(b) != len(first) for t, b in bodies):
            raise PodError("the values of a Choice must share one type")
        return TYPE_CHOICE, (_PAIR.pack(value.kind, value.flags)
                             + _HEADER.pack(len(first), child_type)
                             + b"".join(b for _, b in bodies))
    if isinstance(value, Object):
        props = b"".join(_PAIR.pack(p.key, p.flags) + encode(p.value) for p in value.props)
        return TYPE_OBJECT, _PAIR.pack(value.type, value.id) + props
    if isinstance(value, Raw):
        return value.type, value.body
    raise PodError(f"cannot serialise {type(value).__name__} as a POD")


def encode(value) -> bytes:
    """The POD bytes of ``value``, padded to a multiple of 8."""
    spa_type, body = _body(value)
    return _pad8(_HEADER.pack(len(body), spa_type) + body)


def decode(data: bytes | memoryview) -> object:
    """Parse one POD at the start of ``data`` (trailing bytes are ignored)."""
    value, _ = _decode_at(memoryview(data).cast("B"), 0)
    return value


def _decode_at(data: memoryview, offset: int) -> tuple[object, int]:
    """(value, offset just past its padding) of the POD at ``offset``."""
    if offset + 8 > len(data):
        raise PodError("POD header is truncated")
    size, spa_type = _HEADER.unpack_from(data, offset)
    start = offset + 8
    end = start + size
    if end > len(data):
        raise PodError("POD body is truncated")
    body = bytes(data[start:end])
    return _decode_body(spa_type, body), min(end + (-size % 8), len(data))


def _decode_body(spa_type: int, body: bytes) -> object:
    known = _BY_TYPE.get(spa_type)
    if known is not None:
        cls, layout = known
        if len(body) != layout.size:
            raise PodError(f"POD of type {spa_type} has a {len(body)}-byte body")
        fields = layout.unpack(body)
        return Bool(bool(fields[0])) if cls is Bool else cls(*fields)
    if spa_type == TYPE_CHOICE:
        if len(body) < 16:
            raise PodError("Choice POD is truncated")
        kind, flags = _PAIR.unpack_from(body, 0)
        child_size, child_type = _HEADER.unpack_from(body, 8)
        values = body[16:]
        if child_size == 0 or len(values) % child_size:
            raise PodError("Choice values do not fill its body")
        return Choice(kind, tuple(_decode_body(child_type, values[i:i + child_size])
                                  for i in range(0, len(values), child_size)), flags)
    if spa_type == TYPE_OBJECT:
        if len(body) < 8:
            raise PodError("Object POD is truncated")
        object_type, object_id = _PAIR.unpack_from(body, 0)
        view = memoryview(body)
        offset, props = 8, []
        while offset < len(body):
            if offset + 8 > len(body):
                raise PodError("Object property is truncated")
            key, flags = _PAIR.unpack_from(body, offset)
            value, offset = _decode_at(view, offset + 8)
            props.append(Prop(key, value, flags))
        return Object(object_type, object_id, tuple(props))
    return Raw(spa_type, body)


def fixed(value):
    """The value a negotiated (fixated) property holds: a Choice of kind None, or any
    Choice's default, stands for its first value."""
    if isinstance(value, Choice):
        return value.values[0]
    return value
