"""Video decoders: one access unit in, its picture out, with no frame delay.

Backends, tried by ``auto`` in this order:

``vaapi``     FFmpeg's native decoder with the VA-API hwaccel (PyAV ``HWAccel``),
              pictures downloaded to NV12 in system memory.
``nvdec``     the same with the CUDA hwaccel (NVDEC).
``software``  FFmpeg's native decoder on the CPU (yuv420p out).

A hardware backend is used only if it decodes a real test access unit on the
hardware (no silent software fallback); the reasons the others were skipped
are kept in ``decoder.fallbacks`` and returned by ``probe_decoders()``.

Low delay: the codec is opened with AV_CODEC_FLAG_LOW_DELAY and slice
threading only.  Frame threading would hold one frame per thread before the
first picture comes out; the host's streams have no B-frames, so nothing needs
reordering and every ``decode()`` returns the picture of the packet it was
given.

Bad bitstreams: what FFmpeg rejects becomes a DecodeError (counted in
``errors``) and the decoder stays usable; what it conceals comes out as a
picture flagged ``is_corrupt`` (counted in ``corrupt_frames``).  The client's
answer to either is to ask the host for an IDR.  A lost reference frame is not
always visible here: the protocol's frame numbering is what catches loss.
"""

from __future__ import annotations

import av
import av.logging

from rootstream.backends import BackendProbe, ProvingRegistry
from rootstream.decode.pyav import CODECS, DECODERS, VideoDecoder
from rootstream.errors import DecodeError, EncodeError

__all__ = ["CODECS", "DECODE", "DECODERS", "VideoDecoder", "open_decoder", "probe_decoders"]

_test_units: dict[str, bytes] = {}


def _test_access_unit(codec: str) -> bytes:
    """One real keyframe to prove a decoder with, made once by the software encoder."""
    if codec not in _test_units:
        from rootstream.encode import open_encoder, pattern_nv12

        software = "x264" if codec == "h264" else "x265"
        with open_encoder(software, width=320, height=192, codec=codec) as encoder:
            units = encoder.encode(pattern_nv12(320, 192), force_keyframe=True)
        _test_units[codec] = units[0].data
    return _test_units[codec]


def _open_proven(name: str, *, codec: str, device: str | None = None) -> VideoDecoder:
    decoder = VideoDecoder(name, codec, device=device)
    try:
        unit = _test_access_unit(codec)
    except EncodeError as exc:
        if not decoder.is_hardware:
            return decoder  # nothing to prove the CPU decoder with; it opened
        raise DecodeError(f"the {name} decoder could not be tested",
                          details=[str(exc), *exc.details]) from exc
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture() as log:
            frames = decoder.decode(unit)
            frames += decoder.flush()
    except DecodeError as exc:
        exc.details += [f"ffmpeg: {str(m).strip()}" for _l, _n, m in log[-1:]]
        raise
    finally:
        av.logging.set_level(level)
    if not frames:
        raise DecodeError(f"the {name} decoder returned no picture for a test keyframe")
    decoder.frames_decoded = 0
    return decoder


DECODE = ProvingRegistry("decoder", DECODERS, DecodeError, prove=_open_proven,
                         proven=lambda decoder: f"decoded a {decoder.codec} test keyframe")


def open_decoder(name: str = "auto", codec: str = "h264", *,
                 device: str | None = None) -> VideoDecoder:
    """Open a decoder by backend name, or the first that decodes a test
    keyframe (``auto``); ``decoder.fallbacks`` says why earlier ones did not."""
    return DECODE.open(name, what=f"{codec} decoder", codec=codec, device=device)


def probe_decoders(codec: str = "h264") -> list[BackendProbe]:
    """Every decoder backend in ``auto`` order, each tried on a real keyframe."""
    return DECODE.probe(codec=codec)
