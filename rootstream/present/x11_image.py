"""The x11 presenter's pictures: window-sized images the X server can take.

A picture is a shared MIT-SHM segment (the server reads it in place) or,
without MIT-SHM, plain memory sent by XPutImage.  These functions make,
fill, read back and free them; rootstream.present.x11 decides when.
"""

from __future__ import annotations

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from rootstream._native import xlib
from rootstream._native._yuv2rgb import yuv420_to_rgb32
from rootstream._native.xlib import ffi
from rootstream.errors import PresentError
from rootstream.present.base import Rect

# swscale at equal sizes or plain scaling: FAST_BILINEAR measured fastest
# (docs/BENCHMARKS.md); one thread, because the decoder runs on the other core.
INTERPOLATION = Interpolation.FAST_BILINEAR
SCALE_THREADS = 1
# X's masks for a 32-bit little-endian pixel -> swscale's name for that layout.
PIXEL_FORMATS = {(0xFF0000, 0xFF00, 0xFF): "bgr0", (0xFF, 0xFF00, 0xFF0000): "rgb0"}
# swscale's layout name -> our converter's, for the unscaled path.
DIRECT_FORMATS = {"bgr0": "BGRX", "rgb0": "RGBX"}
# Off: swscale at equal sizes too (bench_glass.py's rootstream-swscale, to
# measure what the native path is worth in the same rounds).
NATIVE_UNSCALED = True


class ImageBuffer:
    """One window-sized picture the server can take: a shared segment, or
    (without MIT-SHM) plain memory sent by XPutImage."""

    def __init__(self, image, shminfo, pixels: np.ndarray, keep):
        self.image, self.shminfo, self.pixels = image, shminfo, pixels
        self._keep = keep  # what ``pixels`` views; freed with the last view
        self.busy = False  # put, and the server's ShmCompletion not read yet
        self.layout: tuple | None = None  # (box, format) its bars were cleared for


def shm_buffer(display, visual, depth: int, w: int, h: int) -> ImageBuffer | str:
    """A shared-memory picture, or why MIT-SHM cannot give one."""
    made = xlib.create_shm_image(display, visual, depth, w, h)
    if isinstance(made, str):
        return made
    return ImageBuffer(made.image, made.shminfo, made.pixels, made.mapping)


def plain_buffer(libs, display, visual, depth: int, w: int, h: int) -> ImageBuffer:
    memory = ffi.new("char[]", w * h * 4)  # zeroed: black
    image = libs.x11.XCreateImage(display, visual, depth, xlib.ZPIXMAP, 0, memory, w, h, 32,
                                  w * 4)
    if image == ffi.NULL:
        raise PresentError("the X server's visual cannot hold our pictures",
                           details=[f"depth {depth}"])
    pixels = np.frombuffer(ffi.buffer(memory), dtype=np.uint8).reshape(h, w * 4)
    return ImageBuffer(image, None, pixels, memory)


def pixel_format(image) -> str:
    """swscale's name for the image's pixel layout; PresentError when we have none."""
    layout = (image.red_mask, image.green_mask, image.blue_mask)
    if image.bits_per_pixel != 32 or image.byte_order != xlib.LSB_FIRST or \
            layout not in PIXEL_FORMATS:
        raise PresentError(
            "unsupported X pixel format",
            hint="run the X server at depth 24 (32 bits per pixel)",
            details=[f"depth {image.depth}, {image.bits_per_pixel} bits per pixel, masks "
                     f"{layout[0]:#x}/{layout[1]:#x}/{layout[2]:#x}"])
    return PIXEL_FORMATS[layout]


def scale_into(reformatter: VideoReformatter, buffer: ImageBuffer, frame: av.VideoFrame,
               box: Rect, fmt: str) -> None:
    """Scale ``frame`` into ``box`` of ``buffer``, the bars around it black."""
    layout = (box, fmt)
    if buffer.layout != layout:  # new size or stream shape: bars must be black
        buffer.pixels.fill(0)
        buffer.layout = layout
    if NATIVE_UNSCALED and box.w == frame.width and box.h == frame.height and \
            frame.format.name == "yuv420p":
        # The common case (window = stream size, the software decoder's
        # format): one native pass straight into the segment, no frame of
        # swscale's own and no copy.  At a display's cadence 0.20 ms at 720p
        # and 0.48 ms at 1080p, against 0.34-0.41 and 0.95-1.0 ms for swscale
        # and the copy (docs/BENCHMARKS.md, "the last miss").
        convert_unscaled(buffer, frame, box, fmt)
        return
    # VideoReformatter cannot write into our segment, so swscale fills a
    # frame of its own and one copy moves its rows into place.
    scaled = reformatter.reformat(
        frame, box.w, box.h, fmt, src_colorspace="ITU709",
        src_color_range="MPEG", dst_color_range="JPEG", interpolation=INTERPOLATION,
        threads=SCALE_THREADS)
    plane = scaled.planes[0]
    rows = np.frombuffer(plane, dtype=np.uint8).reshape(box.h, plane.line_size)
    np.copyto(buffer.pixels[box.y:box.y + box.h, box.x * 4:(box.x + box.w) * 4],
              rows[:, :box.w * 4])


def convert_unscaled(buffer: ImageBuffer, frame: av.VideoFrame, box: Rect, fmt: str) -> None:
    """``frame`` (yuv420p, BT.709 limited, box-sized) into ``box`` of ``buffer``,
    converted by rootstream._native._yuv2rgb (the formula: yuv2rgb.h)."""
    y, u, v = frame.planes
    stride = buffer.pixels.strides[0]
    yuv420_to_rgb32(y, y.line_size, u, u.line_size, v, v.line_size, box.w, box.h,
                    buffer.pixels, stride, dst_offset=box.y * stride + box.x * 4,
                    pixel_format=DIRECT_FORMATS[fmt])


def read_window(libs, display, window, w: int, h: int) -> np.ndarray | None:
    """The window's w x h pixels (4 bytes each) as the server holds them; None
    when the server sends nothing back."""
    x11 = libs.x11
    image = x11.XGetImage(display, window, 0, 0, w, h, xlib.ALL_PLANES, xlib.ZPIXMAP)
    if image == ffi.NULL:
        return None
    try:
        rows = np.frombuffer(ffi.buffer(image.data, image.bytes_per_line * h),
                             dtype=np.uint8).reshape(h, image.bytes_per_line)
        return rows[:, :w * 4].reshape(h, w, 4).copy()
    finally:
        x11.XDestroyImage(image)


def destroy_buffers(libs, display, buffers: list[ImageBuffer], alive: bool) -> None:
    """Detach and free ``buffers`` (none of them busy); ``alive``: the display still is."""
    for buffer in buffers:
        if buffer.shminfo is not None and alive:
            libs.xext.XShmDetach(display, buffer.shminfo)
        buffer.image.data = ffi.NULL  # the memory is released with its last view
        libs.x11.XDestroyImage(buffer.image)
    if alive:
        libs.x11.XSync(display, False)
