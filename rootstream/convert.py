"""The convert stage: packed 32-bit RGB frames to NV12 for the encoder.

The work happens in the C extension ``rootstream._native._nv12`` (SSE2/AVX2,
rows split across threads, GIL released); its docstring and ``nv12.h`` define
the exact integer formula.  This module chooses arguments and owns the frames
handed to the encoder.

The host's hot path::

    converter = NV12Converter(width, height, "BGRX")      # BT.709 limited
    frame = converter.convert(captured)                   # an nv12 av.VideoFrame

``convert`` writes straight into the planes of a PyAV frame (respecting its
``line_size`` padding), so a captured picture is read once and written once.
"""

from __future__ import annotations

import platform
import time
from typing import Any

import av
import numpy as np

from rootstream.backends import BackendProbe
from rootstream.frame import CapturedFrame

try:
    from rootstream._native import _nv12
except ImportError as exc:  # a source checkout where the C extension was never built
    raise ImportError(
        "rootstream's C extension rootstream._native._nv12 is not built; run "
        "`pip install -e .` or `python setup.py build_ext --inplace` in the checkout"
    ) from exc

PIXEL_FORMATS = ("BGRX", "BGRA", "RGBX", "RGBA")
MATRICES = ("bt601", "bt709")
_MAX_DIMENSION = 32768  # the extension's limit

# FFmpeg's AVColorSpace / AVColorRange / AVColorPrimaries / AVColorTransfer-
# Characteristic numbers (the H.273 code points).  Desktop pixels are sRGB,
# whose primaries are BT.709's; the transfer is tagged BT.709 as the encoder
# (rootstream.encode) does, so frame and bitstream agree.
_COLORSPACE = {"bt601": 5, "bt709": 1}  # BT470BG (= BT.601 625), BT709
_RANGE_LIMITED, _RANGE_FULL = 1, 2  # "MPEG" 16-235, "JPEG" 0-255
_PRIMARIES_BT709 = _TRC_BT709 = 1


def auto_path() -> str:
    """The conversion path ``path="auto"`` runs on this CPU: avx2, sse2 or scalar."""
    return _nv12.auto_path()


def available_paths() -> list[str]:
    """Every path this CPU can run, slowest first (tests and benches force each)."""
    return _nv12.paths()


_ALL_PATHS = ("scalar", "sse2", "avx2")  # slowest first, as the extension lists them


def probe_paths() -> list[BackendProbe]:
    """Every conversion path: usable here, and why, for ``rootstream doctor``."""
    usable, chosen = available_paths(), auto_path()
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "i386")
    report = []
    for name in _ALL_PATHS:
        if name in usable:
            report.append(BackendProbe(name, True,
                                       "chosen by auto" if name == chosen else "usable"))
        elif not x86:
            report.append(BackendProbe(name, False,
                                       f"x86 only; this machine is {platform.machine()}"))
        else:
            report.append(BackendProbe(name, False, f"this CPU has no {name.upper()}"))
    return report


def color_properties(matrix: str = "bt709", full_range: bool = False) -> dict[str, int]:
    """The colour tags of frames converted with ``matrix``/``full_range``.

    The same attributes exist on an encoder's codec context; libx264 writes
    the context's values (not the frame's) into the bitstream, so an encoder
    fed by this converter should be opened with these.
    """
    if matrix not in _COLORSPACE:
        raise ValueError(f"unknown matrix {matrix!r}; known: {', '.join(MATRICES)}")
    return {
        "colorspace": _COLORSPACE[matrix],
        "color_range": _RANGE_FULL if full_range else _RANGE_LIMITED,
        "color_primaries": _PRIMARIES_BT709,
        "color_trc": _TRC_BT709,
    }


def _threads_arg(threads: int | None) -> int:
    # The extension takes 0 for "choose from the frame size and CPU count".
    return 0 if threads is None else threads


def _default_stride(src: Any, width: int) -> int:
    if isinstance(src, np.ndarray) and src.ndim >= 2:
        return src.strides[0]
    return width * 4


# PyAV pixel format -> (extension function, names of its planes).
_LAYOUTS = {"nv12": (_nv12.nv12, ("y", "uv")), "yuv420p": (_nv12.i420, ("y", "u", "v"))}


def _write_frame(frame: av.VideoFrame, src: Any, width: int, height: int, src_stride: int,
                 options: dict[str, Any]) -> None:
    convert, _ = _LAYOUTS[frame.format.name]
    planes = []
    for plane in frame.planes:
        planes += (plane, plane.line_size)
    convert(src, width, height, src_stride, *planes, **options)


def _new_frame(width: int, height: int, layout: str, tags: dict[str, int]) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, layout)
    for name, value in tags.items():
        setattr(frame, name, value)
    return frame


def _convert(layout: str, src: Any, width: int, height: int, src_stride: int | None,
             pixel_format: str, matrix: str, full_range: bool, out: Any,
             threads: int | None, path: str):
    convert, plane_names = _LAYOUTS[layout]
    stride = _default_stride(src, width) if src_stride is None else src_stride
    options = {"pixel_format": pixel_format, "matrix": matrix, "full_range": full_range,
               "path": path, "threads": _threads_arg(threads)}
    if isinstance(out, tuple):
        if len(out) != len(plane_names):
            raise TypeError(f"out must hold {len(plane_names)} planes ({', '.join(plane_names)})")
        planes = []
        for name, plane in zip(plane_names, out, strict=True):
            if not isinstance(plane, np.ndarray) or plane.ndim != 2 or plane.dtype != np.uint8:
                raise TypeError(f"out {name} plane must be a 2-D uint8 numpy array")
            planes += (plane, plane.strides[0])
        convert(src, width, height, stride, *planes, **options)
        return out
    tags = color_properties(matrix, full_range)
    if out is None:
        frame = _new_frame(width, height, layout, tags)
    elif isinstance(out, av.VideoFrame):
        if out.format.name != layout or out.width != width or out.height != height:
            raise ValueError(f"out frame must be {layout} {width}x{height}, "
                             f"got {out.format.name} {out.width}x{out.height}")
        out.make_writable()
        frame = out
        for name, value in tags.items():
            setattr(frame, name, value)
    else:
        raise TypeError(f"out must be None, an av.VideoFrame or a tuple of "
                        f"{len(plane_names)} numpy arrays")
    _write_frame(frame, src, width, height, stride, options)
    return frame


def to_nv12(src: Any, width: int, height: int, *, src_stride: int | None = None,
            pixel_format: str = "BGRX", matrix: str = "bt709", full_range: bool = False,
            out: av.VideoFrame | tuple[np.ndarray, np.ndarray] | None = None,
            threads: int | None = None, path: str = "auto"):
    """Convert one packed 32-bit picture to NV12.

    ``src`` is any contiguous buffer (numpy array, bytes, mmap) holding
    ``height`` rows ``src_stride`` bytes apart (default: the row stride of a
    numpy array, else ``width * 4``).  ``out`` chooses the result:

    - ``None``: a new ``av.VideoFrame`` (nv12) carrying the colour tags;
    - an ``av.VideoFrame`` of format nv12 and the same size: written in place
      (its tags are set too) and returned;
    - ``(y, uv)``: two C-contiguous 2-D uint8 arrays, shapes ``(height, >= width)``
      and ``((height + 1) // 2, >= 2 * ((width + 1) // 2))``, written in place and
      returned.

    ``threads=None`` lets the extension choose from the frame size and CPUs.
    Bad arguments raise ``ValueError`` or ``TypeError``; nothing is written
    outside the given buffers.
    """
    return _convert("nv12", src, width, height, src_stride, pixel_format, matrix, full_range,
                    out, threads, path)


def to_i420(src: Any, width: int, height: int, *, src_stride: int | None = None,
            pixel_format: str = "BGRX", matrix: str = "bt709", full_range: bool = False,
            out: av.VideoFrame | tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
            threads: int | None = None, path: str = "auto"):
    """Like ``to_nv12`` but planar: an ``av.VideoFrame`` (yuv420p) or ``(y, u, v)``.

    The chroma values are the same as NV12's, only laid out in two planes of
    ``((height + 1) // 2, >= (width + 1) // 2)``.
    """
    return _convert("yuv420p", src, width, height, src_stride, pixel_format, matrix,
                    full_range, out, threads, path)


class NV12Converter:
    """Converts captured frames of one size and format into pooled NV12 frames.

    ``convert`` returns one of ``pool_size`` frames in turn.  Each is made
    writable before it is overwritten: if the encoder still holds a reference
    to it (FFmpeg frames are reference counted), FFmpeg gives it a fresh
    buffer instead of letting us scribble over a picture in flight.  With the
    encoder consuming each frame before the next capture, no copy ever happens.
    """

    def __init__(self, width: int, height: int, pixel_format: str = "BGRX", *,
                 matrix: str = "bt709", full_range: bool = False, threads: int | None = None,
                 path: str = "auto", pool_size: int = 3):
        if pixel_format not in PIXEL_FORMATS:
            raise ValueError(f"unknown pixel_format {pixel_format!r}; "
                             f"known: {', '.join(PIXEL_FORMATS)}")
        if path not in ("auto", *available_paths()):
            raise ValueError(f"path {path!r} is not available here; "
                             f"known: auto, {', '.join(available_paths())}")
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {pool_size}")
        if not (0 < width <= _MAX_DIMENSION and 0 < height <= _MAX_DIMENSION):
            raise ValueError(f"width and height must be between 1 and {_MAX_DIMENSION}, "
                             f"got {width}x{height}")
        self.width, self.height = width, height
        self.pixel_format = pixel_format
        self.matrix, self.full_range = matrix, full_range
        self.path = auto_path() if path == "auto" else path
        self.threads = threads
        self.color = color_properties(matrix, full_range)
        self._options = {"pixel_format": pixel_format, "matrix": matrix,
                         "full_range": full_range, "path": self.path,
                         "threads": _threads_arg(threads)}
        # Allocating here also proves width/height are acceptable to FFmpeg.
        self._pool = [_new_frame(width, height, "nv12", self.color) for _ in range(pool_size)]
        self._next = 0

    def convert(self, captured: CapturedFrame) -> av.VideoFrame:
        """Convert ``captured`` into the next pooled frame and stamp ``converted``.

        The returned frame stays valid until ``pool_size - 1`` further calls.
        """
        if (captured.width, captured.height, captured.pixel_format) != (
                self.width, self.height, self.pixel_format):
            raise ValueError(
                f"converter is set up for {self.pixel_format} {self.width}x{self.height}, got "
                f"{captured.pixel_format} {captured.width}x{captured.height}")
        frame = self._pool[self._next]
        self._next = (self._next + 1) % len(self._pool)
        frame.make_writable()
        frame.pts = None
        _write_frame(frame, captured.pixels, self.width, self.height, captured.stride,
                     self._options)
        captured.stamps.converted = time.monotonic_ns()
        return frame
