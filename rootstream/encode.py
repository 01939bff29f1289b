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
"""

from __future__ import annotations

import ctypes.util
import glob
import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import av
import av.logging
import numpy as np
from av.codec.context import CodecContext
from av.codec.hwaccel import HWAccel, hwdevices_available
from av.video.frame import PictureType

from rootstream.backends import BackendProbe, first_that_opens
from rootstream.errors import EncodeError

__all__ = [
    "BackendProbe",
    "EncodedUnit",
    "VideoEncoder",
    "ENCODERS",
    "open_encoder",
    "pattern_nv12",
    "probe_encoders",
]

CODECS = ("h264", "hevc")

# x264's own "infinite" keyint (X264_KEYINT_MAX_INFINITE); also used as the
# GOP length for the hardware encoders, which take a plain integer.
ENDLESS_GOP = 1 << 30

# AVColorPrimaries / AVColorTransferCharacteristic / AVColorSpace value for
# BT.709, and AVColorRange "MPEG" (limited, 16-235).
_BT709 = 1
_LIMITED_RANGE = 1


@dataclass(frozen=True, slots=True)
class EncodedUnit:
    """One encoded access unit (Annex B byte stream) and what the sender needs."""

    data: bytes
    keyframe: bool  # an IDR: a fresh decoder can start here
    pts: int  # the encoder's frame counter, in 1/fps units


class VideoEncoder:
    """A PyAV encoder set up for one-frame-in, one-packet-out streaming.

    Subclasses name their FFmpeg encoders, their private options, their
    hardware device and how they change bitrate; everything else is shared.
    Not thread-safe: one thread feeds it.
    """

    name: str = ""
    codec_names: dict[str, str] = {}
    # What the FFmpeg encoder takes.  Anything but NV12 costs one conversion
    # per frame (libx265 has no NV12 input).
    pix_fmt: str = "nv12"

    def __init__(self, *, width: int, height: int, fps: int = 60,
                 bitrate: int = 10_000_000, codec: str = "h264", gop: int | None = None,
                 **opts):
        if codec not in self.codec_names:
            raise EncodeError(
                f"the {self.name} encoder does not encode {codec}",
                details=[f"{self.name} encodes: {', '.join(self.codec_names)}"],
            )
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise EncodeError("frame size must be positive and even",
                              details=[f"got {width}x{height}"])
        self.width, self.height, self.fps = width, height, int(fps)
        self.bitrate = int(bitrate)
        self.codec = codec
        self.gop = gop
        self.opts = opts
        self.fallbacks: list[BackendProbe] = []  # filled by open_encoder("auto")
        self.frames_encoded = 0
        self._next_pts = 0
        self._force_next_keyframe = False
        self._ctx = self._open_context()

    # -- shared machinery -------------------------------------------------

    @property
    def ffmpeg_name(self) -> str:
        return self.codec_names[self.codec]

    def _open_context(self):
        try:
            ctx = CodecContext.create(self.ffmpeg_name, "w", hwaccel=self._hwaccel())
            ctx.width, ctx.height = self.width, self.height
            # For the hardware encoders this is the software format of the
            # frames context the uploads go through.
            ctx.pix_fmt = self.pix_fmt
            ctx.framerate = Fraction(self.fps, 1)
            ctx.time_base = Fraction(1, self.fps)
            ctx.bit_rate = self.bitrate
            ctx.gop_size = self.gop if self.gop else ENDLESS_GOP
            ctx.max_b_frames = 0
            ctx.color_primaries = ctx.color_trc = ctx.colorspace = _BT709
            ctx.color_range = _LIMITED_RANGE
            # One frame of VBV: a frame may not spend more than its share of a
            # second, so a keyframe cannot flood the link (CBR-ish).
            options = {
                "maxrate": str(self.bitrate),
                "bufsize": str(max(self.bitrate // self.fps, 1000)),
            }
            options.update(self.private_options(self.gop))
            options.update({k: str(v) for k, v in self.opts.items()})
            ctx.options = options
            ctx.open()
        except (av.error.FFmpegError, NotImplementedError, ValueError) as exc:
            raise EncodeError(f"the {self.name} encoder could not be opened",
                              details=[_describe(exc)]) from exc
        if ctx.options:  # FFmpeg hands back the options nobody took
            raise EncodeError(f"the {self.name} encoder does not know some options",
                              details=[f"unused: {', '.join(sorted(ctx.options))}"])
        return ctx

    def encode(self, frame: av.VideoFrame, *, force_keyframe: bool = False) -> list[EncodedUnit]:
        """Encode one NV12 frame; returns that frame's access unit(s).

        The frame's ``pts`` and ``pict_type`` are overwritten (the encoder owns
        the timeline; ``pict_type`` carries the IDR request to FFmpeg).
        """
        if self._ctx is None:
            raise EncodeError(f"the {self.name} encoder is closed")
        if frame.format.name != "nv12" or frame.width != self.width or frame.height != self.height:
            raise EncodeError(
                "encoder input must be an NV12 frame of the configured size",
                details=[f"expected nv12 {self.width}x{self.height}, got "
                         f"{frame.format.name} {frame.width}x{frame.height}"],
            )
        if self._force_next_keyframe:
            force_keyframe, self._force_next_keyframe = True, False
        if self.pix_fmt != "nv12":
            frame = frame.reformat(format=self.pix_fmt)
        frame.pts = self._next_pts
        frame.pict_type = PictureType.I if force_keyframe else PictureType.NONE
        self._next_pts += 1
        try:
            packets = self._ctx.encode(frame)
        except av.error.FFmpegError as exc:
            raise EncodeError(f"the {self.name} encoder failed on a frame",
                              details=[_describe(exc)]) from exc
        self.frames_encoded += 1
        return [EncodedUnit(bytes(p), bool(p.is_keyframe), int(p.pts or 0)) for p in packets]

    def set_bitrate(self, bps: int) -> bool:
        """Change the target bitrate.

        Returns True when the running encoder took the new rate without a new
        keyframe; False when it had to be reopened, in which case the next
        packet is an IDR (the client needs no special handling for it).
        """
        bps = int(bps)
        if bps <= 0:
            raise EncodeError("bitrate must be positive", details=[f"got {bps}"])
        if bps == self.bitrate:
            return True
        if self._reconfigure_bitrate(bps):
            self.bitrate = bps
            return True
        self.bitrate = bps
        self._reopen()
        return False

    def _reopen(self) -> None:
        old, self._ctx = self._ctx, None
        del old  # PyAV frees the codec context (and its device) on release
        self._ctx = self._open_context()
        self._force_next_keyframe = True

    def self_test(self) -> None:
        """Encode one test picture and demand a packet back (the probe).

        The next real frame is then forced to be an IDR, since the receiver
        never saw the test frame the encoder now references.
        """
        units = self.encode(pattern_nv12(self.width, self.height))
        if not units or not units[0].data:
            raise EncodeError(f"the {self.name} encoder returned no packet for a test frame",
                              details=["it buffers frames, which streaming cannot use"])
        self._force_next_keyframe = True

    def close(self) -> None:
        self._ctx = None

    def __enter__(self) -> VideoEncoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what each backend decides ----------------------------------------

    @classmethod
    def unavailable_reason(cls, codec: str) -> str:
        """Why this backend cannot work here, from facts checked without opening it."""
        if codec not in cls.codec_names:
            return f"{cls.name} encodes {', '.join(cls.codec_names)} only"
        missing = cls.codec_names[codec]
        if missing not in av.codecs_available:
            libavcodec = ".".join(map(str, av.library_versions["libavcodec"]))
            return (f"this FFmpeg build (PyAV {av.__version__}, libavcodec {libavcodec}) "
                    f"has no {missing} encoder")
        return ""

    def _hwaccel(self) -> HWAccel | None:
        return None

    @classmethod
    def private_options(cls, gop: int | None) -> dict[str, str]:
        """The FFmpeg encoder's own options for low-latency streaming."""
        return {}

    def _reconfigure_bitrate(self, bps: int) -> bool:
        return False


class X264Encoder(VideoEncoder):
    """libx264 (and libx265 for HEVC, registered as ``x265``).

    Bitrate: FFmpeg's libx264 wrapper compares ``bit_rate`` before each frame
    and calls ``x264_encoder_reconfig`` - no new keyframe.  The VBV ceiling
    (``maxrate``) is fixed at open and PyAV cannot change it on an open codec,
    so a rate above the ceiling reopens the encoder (and returns False).
    """

    name = "x264"
    codec_names = {"h264": "libx264"}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._ceiling = self.bitrate

    @classmethod
    def private_options(cls, gop: int | None) -> dict[str, str]:
        keyint = str(gop) if gop else "infinite"
        params = ":".join([
            f"keyint={keyint}",
            "scenecut=0",  # an IDR only when the client asks
            "bframes=0",
            "rc-lookahead=0",
            "sync-lookahead=0",
            "sliced-threads=1",  # threads split one frame, never delay it
            "repeat-headers=1",  # SPS/PPS before each IDR
            "colorprim=bt709:transfer=bt709:colormatrix=bt709:range=tv",
        ])
        return {"preset": "ultrafast", "tune": "zerolatency", "forced-idr": "1",
                "x264-params": params}

    def _reconfigure_bitrate(self, bps: int) -> bool:
        if bps > self._ceiling:
            return False
        self._ctx.bit_rate = bps
        return True

    def _reopen(self) -> None:
        self._ceiling = self.bitrate
        super()._reopen()


class X265Encoder(VideoEncoder):
    """libx265 for HEVC.  FFmpeg's wrapper has no runtime reconfigure: a bitrate
    change reopens the encoder (next packet is an IDR)."""

    name = "x265"
    codec_names = {"hevc": "libx265"}
    pix_fmt = "yuv420p"

    @classmethod
    def private_options(cls, gop: int | None) -> dict[str, str]:
        params = ":".join([
            f"keyint={gop or -1}",  # -1: no periodic keyframes
            "scenecut=0",
            "bframes=0",
            "rc-lookahead=0",
            "frame-threads=1",
            "repeat-headers=1",
            "colorprim=bt709:transfer=bt709:colormatrix=bt709:range=limited",
            "log-level=error",
        ])
        return {"preset": "ultrafast", "tune": "zerolatency", "forced-idr": "1",
                "x265-params": params}


class NvencEncoder(VideoEncoder):
    """NVIDIA NVENC.  Bitrate: FFmpeg's nvenc applies a changed ``bit_rate`` on
    the next frame through NvEncReconfigureEncoder without an IDR, on GPUs that
    report dynamic bitrate support (every NVENC generation since Maxwell)."""

    name = "nvenc"
    codec_names = {"h264": "h264_nvenc", "hevc": "hevc_nvenc"}

    @classmethod
    def unavailable_reason(cls, codec: str) -> str:
        reason = super().unavailable_reason(codec)
        if not reason and ctypes.util.find_library("cuda") is None:
            reason = "libcuda.so.1 not found: no NVIDIA driver on this machine"
        return reason

    @classmethod
    def private_options(cls, gop: int | None) -> dict[str, str]:
        return {"preset": "p1", "tune": "ull", "zerolatency": "1", "delay": "0",
                "rc": "cbr", "rc-lookahead": "0", "no-scenecut": "1",
                "forced-idr": "1", "bf": "0"}

    def _reconfigure_bitrate(self, bps: int) -> bool:
        self._ctx.bit_rate = bps
        return True


class VaapiEncoder(VideoEncoder):
    """VA-API through PyAV's hardware encode (PyAV 18 added it: ``CodecContext.
    create(..., hwaccel=HWAccel("vaapi"))`` attaches the device, ``open()``
    builds the frames context, ``encode()`` uploads each NV12 frame to a
    surface; older PyAV fails h264_vaapi at avcodec_open2 with EINVAL).

    Option ``device``: the render node (default: the first /dev/dri/renderD*).
    Bitrate: FFmpeg's VA-API encoders fix rate control at init, so a change
    reopens the encoder (next packet is an IDR) and returns False.
    """

    name = "vaapi"
    codec_names = {"h264": "h264_vaapi", "hevc": "hevc_vaapi"}

    def __init__(self, *, device: str | None = None, **kwargs):
        self.device = device or _first_render_node()
        super().__init__(**kwargs)

    @classmethod
    def unavailable_reason(cls, codec: str) -> str:
        reasons = []
        base = super().unavailable_reason(codec)
        if base:
            reasons.append(base)
        if int(av.__version__.split(".")[0]) < 18:
            reasons.append(f"PyAV {av.__version__} cannot encode on hardware (needs PyAV 18+)")
        if "vaapi" not in hwdevices_available():
            reasons.append("its libavutil has no vaapi device type (it has: "
                           f"{', '.join(hwdevices_available()) or 'none'})")
        node = _first_render_node()
        if node is None:
            reasons.append("no /dev/dri/renderD* render node (no GPU, or not passed through)")
        elif not os.access(node, os.R_OK | os.W_OK):
            reasons.append(f"no permission to open {node} (join the 'render' group)")
        return "; ".join(reasons)

    def _hwaccel(self) -> HWAccel:
        return HWAccel("vaapi", device=self.device, allow_software_fallback=False)

    @classmethod
    def private_options(cls, gop: int | None) -> dict[str, str]:
        # async_depth 1: never hold a second frame in flight on the GPU.
        return {"rc_mode": "CBR", "async_depth": "1", "aud": "0"}


def _first_render_node() -> str | None:
    nodes = sorted(glob.glob("/dev/dri/renderD*"))
    return nodes[0] if nodes else None


# 75% colour bars: white, yellow, cyan, green, magenta, red, blue, black (RGB 0..1).
_BARS = np.array([[.75, .75, .75], [.75, .75, 0], [0, .75, .75], [0, .75, 0],
                  [.75, 0, .75], [.75, 0, 0], [0, 0, .75], [0, 0, 0]])


def _bt709_limited(rgb: np.ndarray) -> np.ndarray:
    """RGB in 0..1 to (Y, Cb, Cr) codes, BT.709 matrix, limited range."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    luma = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return np.stack([16 + 219 * luma,
                     128 + 224 * (b - luma) / 1.8556,
                     128 + 224 * (r - luma) / 1.5748], axis=-1).round().astype(np.uint8)


def pattern_nv12(width: int, height: int, index: int = 0) -> av.VideoFrame:
    """A synthetic NV12 picture (BT.709 limited): colour bars over the top half,
    a luma ramp below, and a white square that moves 8 pixels per ``index``.

    Real enough to prove an encoder (flat grey proves little), cheap enough
    to make per frame in tests and benchmarks.
    """
    frame = av.VideoFrame(width, height, "nv12")
    y_plane, uv_plane = frame.planes
    luma = np.frombuffer(y_plane, np.uint8).reshape(-1, y_plane.line_size)[:height, :width]
    chroma = np.frombuffer(uv_plane, np.uint8).reshape(-1, uv_plane.line_size)[:height // 2, :width]
    bars = _bt709_limited(_BARS)[np.arange(width) * len(_BARS) // width]  # (width, 3)
    half = height // 2
    luma[:half] = bars[:, 0]
    luma[half:] = (16 + np.arange(width) * 219 // max(width - 1, 1)).astype(np.uint8)
    chroma[:half // 2, 0::2] = bars[0::2, 1]
    chroma[:half // 2, 1::2] = bars[0::2, 2]
    chroma[half // 2:] = 128
    size = max(2, (height // 8) & ~1)
    x = (index * 8) % max(width - size, 1) & ~1
    y = (half - size // 2) & ~1
    luma[y:y + size, x:x + size] = 235
    chroma[y // 2:(y + size) // 2, x:x + size] = 128
    return frame


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


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


def _try_open(name: str, codec: str, kwargs: dict) -> VideoEncoder:
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


def open_encoder(name: str = "auto", *, width: int, height: int, fps: int = 60,
                 bitrate: int = 10_000_000, codec: str = "h264", gop: int | None = None,
                 **opts) -> VideoEncoder:
    """Open an encoder by backend name, or the first that works (``auto``).

    ``encoder.fallbacks`` lists the backends ``auto`` tried first and why
    they failed.  Extra ``opts`` go to FFmpeg as codec options (strings).
    """
    kwargs = dict(width=width, height=height, fps=fps, bitrate=bitrate, gop=gop, **opts)
    candidates = _backends_for(codec)
    if name != "auto":
        if name not in ENCODERS:
            raise EncodeError(f"unknown encoder {name!r}",
                              details=[f"known: auto, {', '.join(ENCODERS)}"])
        return _try_open(name, codec, kwargs)
    encoder, failed = first_that_opens(candidates, lambda n: _attempt(n, codec, kwargs))
    if encoder is not None:
        encoder.fallbacks = failed
        return encoder
    raise EncodeError(
        f"no {codec} encoder works on this machine",
        hint="install a PyAV/FFmpeg build with libx264, or a GPU driver with VA-API",
        details=[f"{p.name}: {p.reason}" for p in failed],
    )


def probe_encoders(width: int = 1280, height: int = 720, codec: str = "h264") -> list[BackendProbe]:
    """Every backend for ``codec`` in ``auto`` order, each tried on a real frame."""
    results = []
    for name in _backends_for(codec):
        outcome = _attempt(name, codec, dict(width=width, height=height))
        if isinstance(outcome, VideoEncoder):
            outcome.close()
            outcome = BackendProbe(name, True, f"{outcome.ffmpeg_name} encoded a test frame")
        results.append(outcome)
    return results


def _attempt(name: str, codec: str, kwargs: dict) -> VideoEncoder | BackendProbe:
    """The proven encoder, or the record of why it failed."""
    try:
        return _try_open(name, codec, kwargs)
    except EncodeError as exc:
        return BackendProbe(name, False, "; ".join([str(exc), *exc.details]))


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
