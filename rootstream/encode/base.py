"""The encoder interface every backend shares: NV12 frames in, access units out.

``VideoEncoder`` holds what is common - opening the FFmpeg codec with the
low-latency settings, the one-frame-in, one-packet-out ``encode()``, bitrate
changes, the probe with a test frame; a backend names its FFmpeg encoders and
its private options (rootstream/encode/x264.py, nvenc.py, vaapi.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
from av.codec.context import CodecContext
from av.codec.hwaccel import HWAccel
from av.video.frame import PictureType

from rootstream.backends import BackendProbe
from rootstream.errors import EncodeError

from .pattern import pattern_nv12

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
    # The first frame of an intra-refresh cycle (``refresh``): parameter sets
    # and a recovery point; a decoder that starts here (fresh or flushed)
    # shows a clean picture once the cycle has refreshed every block.
    refresh_start: bool = False


class VideoEncoder:
    """A PyAV encoder set up for one-frame-in, one-packet-out streaming.

    Subclasses name their FFmpeg encoders, their private options, their
    hardware device and how they change bitrate; everything else is shared.
    Not thread-safe: one thread feeds it.
    """

    name: str = ""
    codec_names: dict[str, str] = {}
    # Whether the FFmpeg encoder can refresh the picture with a moving band of
    # intra blocks instead of IDRs (``refresh``: the cycle's length in frames).
    supports_refresh: bool = False
    # What the FFmpeg encoder takes.  Anything but NV12 costs one conversion
    # per frame (libx265 has no NV12 input).
    pix_fmt: str = "nv12"

    def __init__(self, *, width: int, height: int, fps: int = 60,
                 bitrate: int = 10_000_000, codec: str = "h264", gop: int | None = None,
                 refresh: int = 0, **opts):
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
        # Frames per intra-refresh cycle; 0 when off or this backend has none
        # (recovery then needs an IDR, as before).
        self.refresh = int(refresh) if self.supports_refresh else 0
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
            ctx.gop_size = self.refresh or self.gop or ENDLESS_GOP
            ctx.max_b_frames = 0
            ctx.color_primaries = ctx.color_trc = ctx.colorspace = _BT709
            ctx.color_range = _LIMITED_RANGE
            # One frame of VBV: a frame may not spend more than its share of a
            # second, so a keyframe cannot flood the link (CBR-ish).
            options = {
                "maxrate": str(self.bitrate),
                "bufsize": str(max(self.bitrate // self.fps, 1000)),
            }
            options.update(self.private_options(self.gop, self.refresh))
            options.update({k: str(v) for k, v in self.opts.items()})
            ctx.options = options
            ctx.open()
        # PyAV's hwaccel raises NotImplementedError when the codec has no
        # hardware config for the device ("No supported hardware config").
        except (av.error.FFmpegError, NotImplementedError, ValueError) as exc:
            raise EncodeError(f"the {self.name} encoder could not be opened",
                              details=[describe_error(exc)]) from exc
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
                              details=[describe_error(exc)]) from exc
        self.frames_encoded += 1
        return [self._unit(bytes(p), bool(p.is_keyframe), int(p.pts or 0)) for p in packets]

    def _unit(self, data: bytes, keyframe: bool, pts: int) -> EncodedUnit:
        # With intra refresh FFmpeg flags each cycle's first frame as a
        # keyframe too; only an IDR is one for the wire (a fresh decoder needs
        # no cycle to show it), the others start a refresh cycle.
        if keyframe and self.refresh and not has_idr(data, self.codec):
            return EncodedUnit(data, False, pts, refresh_start=True)
        return EncodedUnit(data, keyframe, pts)

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
    def private_options(cls, gop: int | None, refresh: int = 0) -> dict[str, str]:
        """The FFmpeg encoder's own options for low-latency streaming (with
        intra refresh every ``refresh`` frames where ``supports_refresh``)."""
        return {}

    def _reconfigure_bitrate(self, bps: int) -> bool:
        return False




def has_idr(data: bytes, codec: str) -> bool:
    """Whether an Annex B access unit holds an IDR picture's NAL unit (H.264
    type 5; HEVC IDR_W_RADL 19 or IDR_N_LP 20)."""
    start = data.find(b"\x00\x00\x01")
    while 0 <= start < len(data) - 3:
        header = data[start + 3]
        if (header & 0x1F == 5) if codec == "h264" else ((header >> 1) & 0x3F in (19, 20)):
            return True
        start = data.find(b"\x00\x00\x01", start + 3)
    return False


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
