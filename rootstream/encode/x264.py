"""Software encoders: libx264 for H.264, libx265 for HEVC."""

from __future__ import annotations

from .base import VideoEncoder


class X264Encoder(VideoEncoder):
    """libx264 (and libx265 for HEVC, registered as ``x265``).

    Bitrate: FFmpeg's libx264 wrapper compares ``bit_rate`` before each frame
    and calls ``x264_encoder_reconfig`` - no new keyframe.  The VBV ceiling
    (``maxrate``) is fixed at open and PyAV cannot change it on an open codec,
    so a rate above the ceiling reopens the encoder (and returns False).
    """

    name = "x264"
    codec_names = {"h264": "libx264"}
    supports_refresh = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._ceiling = self.bitrate

    @classmethod
    def private_options(cls, gop: int | None, refresh: int = 0) -> dict[str, str]:
        # With intra refresh, keyint is the refresh cycle's length: x264 sends
        # no periodic IDR then, but a recovery point and parameter sets each cycle.
        keyint = str(refresh or gop or "infinite")
        params = ":".join([
            f"keyint={keyint}",
            *(["intra-refresh=1"] if refresh else []),
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
    supports_refresh = True

    @classmethod
    def private_options(cls, gop: int | None, refresh: int = 0) -> dict[str, str]:
        params = ":".join([
            f"keyint={refresh or gop or -1}",  # -1: no periodic keyframes
            *(["intra-refresh=1"] if refresh else []),  # keyint: the cycle's length
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
