"""Video encoders: NV12 frames in, H.264/HEVC access units out, one for one.

Three backends share one interface, tried by ``auto`` in this fixed order:

``vaapi``  h264_vaapi / hevc_vaapi through PyAV's hardware encode path: a VA-API
           device context on a DRM render node, a hardware frames context built
           when the codec opens, each NV12 frame uploaded to a VA surface.
``nvenc``  h264_nvenc / hevc_nvenc: preset p1, tune ull, zerolatency, delay 0.
``x264``   libx264 (``x265``: libx265 for HEVC): ultrafast, zerolatency, sliced
           threads.

Every backend is set up so that one ``encode()`` call returns the packet of
that very frame: no B-frames, no lookahead, no frame-level threading, no
scene-cut IDRs, an endless GOP, and an IDR only when asked for
(``force_keyframe``) - the client asks for one after loss.  Parameter sets are
repeated before every IDR so a client can join at any keyframe.  The bitstream
signals BT.709 primaries, transfer and matrix, limited (TV) range, which is what
the converter produces.

Each backend is probed with a real frame: it must hand back a packet, or it is
not used.  ``probe_encoders()`` returns that verdict for every backend, which
``rootstream doctor`` prints.

The backends live in base.py (the shared interface), x264.py, nvenc.py and
vaapi.py; this module is the registry and the factory.
"""

from __future__ import annotations

from collections.abc import Callable

import av
import av.logging

from rootstream.backends import BackendProbe, ProvingRegistry
from rootstream.errors import EncodeError

from .base import CODECS, EncodedUnit, VideoEncoder
from .nvenc import NvencEncoder
from .pattern import pattern_nv12
from .vaapi import VaapiEncoder
from .x264 import X264Encoder, X265Encoder

__all__ = [
    "BackendProbe",
    "EncodedUnit",
    "VideoEncoder",
    "ENCODE",
    "ENCODERS",
    "open_encoder",
    "pattern_nv12",
    "probe_encoders",
]


# name -> class, per codec in ``auto`` order.  The one place a backend is listed.
ENCODERS: dict[str, type[VideoEncoder]] = {
    "vaapi": VaapiEncoder,
    "nvenc": NvencEncoder,
    "x264": X264Encoder,
    "x265": X265Encoder,
}


def _backends_for(codec: str) -> list[str]:
    if codec not in CODECS:
        raise EncodeError(f"unknown video codec {codec!r}", details=[f"known: {', '.join(CODECS)}"])
    return [name for name, cls in ENCODERS.items() if codec in cls.codec_names]


def _try_open(name: str, *, codec: str, **kwargs) -> VideoEncoder:
    """Open one backend and prove it with a test frame; EncodeError says why not."""
    cls = ENCODERS[name]
    reason = cls.unavailable_reason(codec)
    if reason:
        raise EncodeError(f"the {name} encoder is unavailable", details=[reason])
    with _ffmpeg_log() as log:
        try:
            encoder = cls(codec=codec, **kwargs)
            encoder.self_test()
        except EncodeError as exc:
            last = [line for line in log() if line]
            if last:
                exc.details.append(f"ffmpeg: {last[-1]}")
            raise
    return encoder


ENCODE = ProvingRegistry(
    "encoder", ENCODERS, EncodeError, prove=_try_open,
    proven=lambda encoder: f"{encoder.ffmpeg_name} encoded a test frame",
    hint="install a PyAV/FFmpeg build with libx264, or a GPU driver with VA-API")


def open_encoder(name: str = "auto", *, width: int, height: int, fps: int = 60,
                 bitrate: int = 10_000_000, codec: str = "h264", gop: int | None = None,
                 refresh: int = 0, **opts) -> VideoEncoder:
    """Open an encoder by backend name, or the first that works (``auto``).

    ``encoder.fallbacks`` lists the backends ``auto`` tried first and why
    they failed.  ``refresh``: frames per intra-refresh cycle (0: none; a
    backend without it ignores it: ``encoder.refresh`` says).  Extra ``opts``
    go to FFmpeg as codec options (strings).
    """
    return ENCODE.open(name, candidates=_backends_for(codec), what=f"{codec} encoder",
                       codec=codec, width=width, height=height, fps=fps, bitrate=bitrate,
                       gop=gop, refresh=refresh, **opts)


def probe_encoders(width: int = 1280, height: int = 720, codec: str = "h264") -> list[BackendProbe]:
    """Every backend for ``codec`` in ``auto`` order, each tried on a real frame."""
    return ENCODE.probe(_backends_for(codec), codec=codec, width=width, height=height)


class _ffmpeg_log:
    """Capture FFmpeg's error log while probing, since its exceptions alone
    ("Operation not permitted") rarely say what is missing."""

    def __enter__(self) -> Callable[[], list[str]]:
        self._level = av.logging.get_level()
        if self._level is None or self._level < av.logging.ERROR:
            av.logging.set_level(av.logging.ERROR)
        self._capture = av.logging.Capture()
        lines = self._capture.__enter__()
        return lambda: [str(msg).strip() for _level, _name, msg in lines]

    def __exit__(self, *exc) -> None:
        self._capture.__exit__(*exc)
        av.logging.set_level(self._level)
