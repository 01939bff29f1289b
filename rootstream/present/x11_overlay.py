"""The stats overlay for the x11 presenter: text blended into the picture's own pixels.

The x11 presenter has no renderer to draw text with, so the lines are
rendered by SDL_ttf into memory (SDL_ttf needs no SDL window or video) once
per change, composed into one block of BGR colour and alpha, and each frame
blends that block into the top-left corner of the BGRX buffer before it is
put: one numpy blend of a few hundred by a hundred pixels.  Font, library
and "why not" come from TextOverlay (rootstream.present.overlay).

Every method runs on the presenter's thread.
"""

from __future__ import annotations

import ctypes

import numpy as np
import sdl2

from rootstream.present.overlay import MARGIN, TextOverlay

BACKGROUND_ALPHA = 170  # the SDL overlay's translucent black


class PixelOverlay(TextOverlay):
    """``draw(lines, pixels)`` blends ``lines`` into a (height, stride) BGRX uint8 array."""

    def __init__(self) -> None:
        super().__init__(renderer=None)
        self._colour: np.ndarray | None = None  # (h, w, 3) float32, premultiplied by alpha
        self._keep: np.ndarray | None = None  # (h, w, 1) float32: 1 - alpha

    def draw(self, lines: tuple[str, ...], pixels: np.ndarray | None = None) -> None:
        if pixels is None or not lines or self.problem():
            return
        if lines != self._lines:
            self._render(lines)
        if self._colour is None:
            return
        h = min(self._colour.shape[0], pixels.shape[0])
        w = min(self._colour.shape[1], pixels.shape[1] // 4)
        corner = pixels[:h, :w * 4].reshape(h, w, 4)
        blended = corner[..., :3] * self._keep[:h, :w] + self._colour[:h, :w]
        corner[..., :3] = blended.astype(np.uint8)

    def _render(self, lines: tuple[str, ...]) -> None:
        self._lines = lines
        white = sdl2.SDL_Color(255, 255, 255, 255)
        rendered = []
        for line in lines:
            surface = self._ttf.TTF_RenderUTF8_Blended(self._font, (line or " ").encode(), white)
            if surface:
                try:
                    rendered.append(_alpha_of(surface))
                finally:
                    sdl2.SDL_FreeSurface(surface)
        if not rendered:
            self._colour = self._keep = None
            return
        height = sum(a.shape[0] for a in rendered) + 2 * MARGIN
        width = max(a.shape[1] for a in rendered) + 2 * MARGIN
        text = np.zeros((height, width), np.float32)
        y = MARGIN
        for alpha in rendered:
            text[y:y + alpha.shape[0], MARGIN:MARGIN + alpha.shape[1]] = alpha
            y += alpha.shape[0]
        # White text over translucent black: alpha is the text's coverage, or the
        # background's where there is none.
        background = BACKGROUND_ALPHA / 255
        coverage = np.maximum(text, background)[..., None]
        self._keep = 1 - coverage
        self._colour = np.repeat(text[..., None] * 255, 3, axis=2)

    def _free_textures(self) -> None:
        self._colour = self._keep = None
        self._lines = ()


def _alpha_of(surface) -> np.ndarray:
    """The alpha channel (0..1) of a 32-bit SDL surface, as float32 (h, w)."""
    s = surface.contents
    size = s.pitch * s.h
    raw = np.ctypeslib.as_array(ctypes.cast(s.pixels, ctypes.POINTER(ctypes.c_uint8)),
                                shape=(size,)).reshape(s.h, s.pitch)
    shift = s.format.contents.Ashift
    words = raw[:, :s.w * 4].copy().view(np.uint32)
    return ((words >> shift) & 0xFF).astype(np.float32) / 255


__all__ = ["PixelOverlay"]
