"""Opus through PyAV's libopus: low-delay CBR encode, decode with concealment.

What PyAV exposes, found by reading FFmpeg's libopus wrappers: the encoder
takes ``application``, ``frame_duration``, ``vbr``, ``fec`` and
``packet_loss`` options; the decoder always calls ``opus_decode`` with
``decode_fec = 0`` and treats an empty packet as end of stream, so PyAV can
neither decode in-band FEC nor ask for concealment with a NULL packet.  Two
facts rescue us:

* libopus decodes a packet that is only a TOC byte (a frame of zero bytes)
  as a lost frame of the duration that TOC names: real packet-loss
  concealment through an ordinary one-byte packet.
* Restricted low-delay mode is CELT-only, and in-band FEC (LBRR) exists only
  in SILK, so there would be nothing to decode anyway.  The ``fec`` and
  ``packet_loss`` options are still set (they cost nothing and matter if the
  application is ever relaxed); loss protection comes from the AUDIO
  payload's redundant copy of the previous frame (protocol/audio.py).
"""

from __future__ import annotations

import av
import numpy as np

from rootstream.audio.chunk import CHANNELS, RATE
from rootstream.errors import AudioError

FRAME_MS_CHOICES = {2.5: 120, 5: 240, 10: 480, 20: 960}
# CELT-only fullband TOC configurations (RFC 6716 §3.1) by frame length in samples.
_CELT_FB_CONFIG = {120: 28, 240: 29, 480: 30, 960: 31}


def _layout(channels: int) -> str:
    if channels not in (1, 2):
        raise AudioError("Opus streams here are mono or stereo")
    return "stereo" if channels == 2 else "mono"


class OpusEncoder:
    """One Opus frame per ``encode`` call, CBR, restricted low delay."""

    def __init__(self, *, frame_ms: float = 10, bitrate: int = 128_000, channels: int = CHANNELS,
                 packet_loss_percent: int = 5, fec: bool = True):
        if frame_ms not in FRAME_MS_CHOICES:
            raise AudioError(f"unsupported Opus frame duration {frame_ms} ms",
                             hint="use 2.5, 5, 10 or 20 ms")
        self.channels = channels
        self.frame_samples = FRAME_MS_CHOICES[frame_ms]
        try:
            ctx = av.CodecContext.create("libopus", "w")
        except (av.FFmpegError, ValueError) as exc:
            raise AudioError("PyAV has no libopus encoder",
                             hint="install the PyAV wheel, which bundles libopus") from exc
        ctx.sample_rate = RATE
        ctx.layout = _layout(channels)
        ctx.format = "s16"
        ctx.bit_rate = bitrate
        ctx.options = {
            "application": "lowdelay",
            "frame_duration": str(frame_ms),
            "vbr": "off",
            "fec": "1" if fec else "0",
            "packet_loss": str(int(packet_loss_percent)),
        }
        try:
            ctx.open()
        except av.FFmpegError as exc:
            raise AudioError("libopus refused the encoder settings", details=[str(exc)]) from exc
        self._ctx = ctx
        # OpusHead's pre-skip: how many samples the decoder outputs before the
        # first input sample comes out (the encoder's lookahead).
        extradata = bytes(ctx.extradata or b"")
        self.delay_samples = int.from_bytes(extradata[10:12], "little") if len(extradata) >= 12 \
            else 0
        self._pts = 0

    def encode(self, pcm: np.ndarray) -> bytes:
        """Encode exactly one frame of int16 PCM, shape (frame_samples, channels)."""
        if pcm.shape != (self.frame_samples, self.channels) or pcm.dtype != np.int16:
            raise AudioError("Opus encoder got a frame of the wrong shape",
                             details=[f"got {pcm.shape} {pcm.dtype}, "
                                      f"want ({self.frame_samples}, {self.channels}) int16"])
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16",
                                           layout=_layout(self.channels))
        frame.sample_rate = RATE
        frame.pts = self._pts
        self._pts += self.frame_samples
        packets = self._ctx.encode(frame)
        if len(packets) != 1:
            raise AudioError("Opus encoder did not return exactly one packet per frame",
                             details=[f"got {len(packets)}"])
        return bytes(packets[0])


class OpusDecoder:
    """Decode frames in stream order; ``conceal`` stands in for a lost one."""

    def __init__(self, *, channels: int = CHANNELS):
        self.channels = channels
        try:
            ctx = av.CodecContext.create("libopus", "r")
        except (av.FFmpegError, ValueError) as exc:
            raise AudioError("PyAV has no libopus decoder") from exc
        ctx.sample_rate = RATE
        ctx.layout = _layout(channels)
        ctx.open()
        self._ctx = ctx
        self.errors = 0

    def decode(self, data: bytes, samples: int) -> np.ndarray:
        """int16 PCM of shape (samples, channels).

        ``samples`` is what the payload promised; a frame that decodes to
        something else (corrupt, or a peer that lies) is cut or padded with
        concealment, so the playout timeline never depends on a peer's bytes.
        """
        try:
            frames = self._ctx.decode(av.Packet(data))
        except av.FFmpegError:
            self.errors += 1
            return self.conceal(samples)
        pcm = np.concatenate([f.to_ndarray().reshape(-1, self.channels) for f in frames]) \
            if frames else np.zeros((0, self.channels), np.int16)
        if pcm.shape[0] != samples:
            self.errors += 1
            if pcm.shape[0] > samples:
                return pcm[:samples]
            return np.concatenate([pcm, self.conceal(samples - pcm.shape[0])])
        return pcm

    def conceal(self, samples: int) -> np.ndarray:
        """``samples`` of libopus packet-loss concealment, continuing the last frame."""
        out = []
        stereo = 0x04 if self.channels == 2 else 0
        remaining = samples
        while remaining > 0:
            size = max((s for s in _CELT_FB_CONFIG if s <= remaining), default=120)
            toc = (_CELT_FB_CONFIG[size] << 3) | stereo  # code 0: one frame, here of 0 bytes
            frames = self._ctx.decode(av.Packet(bytes([toc])))
            pcm = np.concatenate([f.to_ndarray().reshape(-1, self.channels) for f in frames])
            out.append(pcm)
            remaining -= pcm.shape[0]
        pcm = np.concatenate(out)
        return pcm[:samples]
