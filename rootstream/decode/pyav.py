"""The decoder backends: FFmpeg's native decoders through PyAV, on the CPU or
with a hardware accelerator (VA-API, NVDEC) whose pictures are downloaded to
NV12; which one ``auto`` picks is rootstream.decode's business."""

from __future__ import annotations

import ctypes.util
import glob

import av
import av.logging
from av.codec.context import CodecContext, Flags
from av.codec.hwaccel import HWAccel, hwdevices_available

from rootstream.backends import BackendProbe
from rootstream.errors import DecodeError

CODECS = ("h264", "hevc")

# hwaccel device type per hardware backend; None is the CPU.  ``auto`` order.
DECODERS: dict[str, str | None] = {
    "vaapi": "vaapi",
    "nvdec": "cuda",
    "software": None,
}


# Slice threads of the software decoder; 0: one per core, all working on
# slices of the same frame.  bench_glass's rootstream-dec1 sets 1.
DECODE_THREADS = 0

class VideoDecoder:
    """A PyAV decoder for one H.264 or HEVC stream; one thread feeds it."""

    def __init__(self, name: str = "software", codec: str = "h264", *, device: str | None = None):
        if name not in DECODERS:
            raise DecodeError(f"unknown decoder {name!r}",
                              details=[f"known: auto, {', '.join(DECODERS)}"])
        if codec not in CODECS:
            raise DecodeError(f"unknown video codec {codec!r}",
                              details=[f"known: {', '.join(CODECS)}"])
        self.name, self.codec = name, codec
        self.fallbacks: list[BackendProbe] = []  # filled by open_decoder("auto")
        self.frames_decoded = 0
        self.errors = 0  # access units FFmpeg rejected
        self.corrupt_frames = 0  # pictures FFmpeg returned with concealed damage
        device_type = DECODERS[name]
        hwaccel = None
        if device_type is not None:
            reason = _hw_unavailable_reason(device_type)
            if reason:
                raise DecodeError(f"the {name} decoder is unavailable", details=[reason])
            hwaccel = HWAccel(device_type, device=device, allow_software_fallback=False)
        try:
            ctx = CodecContext.create(codec, "r", hwaccel=hwaccel)
        except av.error.FFmpegError as exc:
            raise DecodeError(f"the {name} decoder could not be opened",
                              details=[f"{type(exc).__name__}: {exc}"]) from exc
        if hwaccel is not None and not ctx.is_hwaccel:
            offered = [str(c.device_type.name) for c in ctx.codec.hardware_configs]
            raise DecodeError(
                f"the {name} decoder is unavailable",
                details=[f"FFmpeg's {codec} decoder has no {device_type} hwaccel in this build "
                         f"(it offers: {', '.join(offered) or 'none'})"],
            )
        ctx.flags |= Flags.low_delay
        ctx.thread_type = "SLICE"
        ctx.thread_count = DECODE_THREADS
        try:
            ctx.open()
        except av.error.FFmpegError as exc:
            raise DecodeError(f"the {name} decoder could not be opened",
                              details=[f"{type(exc).__name__}: {exc}"]) from exc
        self._ctx = ctx

    @property
    def is_hardware(self) -> bool:
        return DECODERS[self.name] is not None

    def decode(self, data: bytes) -> list[av.VideoFrame]:
        """Decode one access unit (Annex B); returns its picture, or [] if the
        decoder needs more (e.g. a P-frame before any keyframe)."""
        if self._ctx is None:
            raise DecodeError(f"the {self.name} decoder is closed")
        if not data:
            # An empty packet would mean "end of stream" to FFmpeg.
            self.errors += 1
            raise DecodeError("empty video access unit")
        try:
            frames = self._ctx.decode(av.Packet(data))
        except av.error.FFmpegError as exc:
            self.errors += 1
            raise DecodeError("the video bitstream could not be decoded",
                              details=[f"{type(exc).__name__}: {exc}"]) from exc
        self.frames_decoded += len(frames)
        self.corrupt_frames += sum(frame.is_corrupt for frame in frames)
        return frames

    def flush(self) -> list[av.VideoFrame]:
        """Drain whatever the decoder still holds and reset it for a new stream
        (after a resolution change or a long gap); the next access unit must be
        a keyframe."""
        try:
            frames = self._ctx.decode(None)
        except av.error.FFmpegError:
            frames = []
        self._ctx.flush_buffers()
        self.frames_decoded += len(frames)
        return frames

    def close(self) -> None:
        self._ctx = None

    def __enter__(self) -> VideoDecoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _hw_unavailable_reason(device_type: str) -> str:
    reasons = []
    if device_type not in hwdevices_available():
        reasons.append(f"this FFmpeg build has no {device_type} device type (it has: "
                       f"{', '.join(hwdevices_available()) or 'none'})")
    if device_type == "vaapi" and not glob.glob("/dev/dri/renderD*"):
        reasons.append("no /dev/dri/renderD* render node (no GPU, or not passed through)")
    if device_type == "cuda" and ctypes.util.find_library("cuda") is None:
        reasons.append("libcuda.so.1 not found: no NVIDIA driver on this machine")
    return "; ".join(reasons)
