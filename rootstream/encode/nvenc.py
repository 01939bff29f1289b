"""NVIDIA NVENC through FFmpeg's h264_nvenc / hevc_nvenc."""

from __future__ import annotations

import ctypes.util

from .base import VideoEncoder


class NvencEncoder(VideoEncoder):
    """NVIDIA NVENC.  Bitrate: FFmpeg's nvenc applies a changed ``bit_rate`` on
    the next frame through NvEncReconfigureEncoder without an IDR, on GPUs that
    report dynamic bitrate support (every NVENC generation since Maxwell)."""

    name = "nvenc"
    codec_names = {"h264": "h264_nvenc", "hevc": "hevc_nvenc"}
    # FFmpeg's nvenc "intra-refresh": NV_ENC_CONFIG_H264/HEVC enableIntraRefresh
    # with intraRefreshPeriod = the GOP length (set to ``refresh`` by the base).
    supports_refresh = True

    @classmethod
    def unavailable_reason(cls, codec: str) -> str:
        reason = super().unavailable_reason(codec)
        if not reason and ctypes.util.find_library("cuda") is None:
            reason = "libcuda.so.1 not found: no NVIDIA driver on this machine"
        return reason

    @classmethod
    def private_options(cls, gop: int | None, refresh: int = 0) -> dict[str, str]:
        options = {"preset": "p1", "tune": "ull", "zerolatency": "1", "delay": "0",
                   "rc": "cbr", "rc-lookahead": "0", "no-scenecut": "1",
                   "forced-idr": "1", "bf": "0"}
        if refresh:
            options["intra-refresh"] = "1"
        return options

    def _reconfigure_bitrate(self, bps: int) -> bool:
        self._ctx.bit_rate = bps
        return True
