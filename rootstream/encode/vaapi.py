"""VA-API through PyAV's hardware encode path (h264_vaapi / hevc_vaapi)."""

from __future__ import annotations

import glob
import os

import av
from av.codec.hwaccel import HWAccel, hwdevices_available

from .base import VideoEncoder


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

    # FFmpeg's h264_vaapi/hevc_vaapi offer no intra refresh (supports_refresh
    # stays False): a VA-API host recovers viewers with IDRs.
    @classmethod
    def private_options(cls, gop: int | None, refresh: int = 0) -> dict[str, str]:
        # async_depth 1: never hold a second frame in flight on the GPU.
        return {"rc_mode": "CBR", "async_depth": "1", "aud": "0"}


def _first_render_node() -> str | None:
    nodes = sorted(glob.glob("/dev/dri/renderD*"))
    return nodes[0] if nodes else None
