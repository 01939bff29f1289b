"""Text over the picture (the client's stats overlay), drawn with SDL_ttf.

The lines are rendered into textures only when they change (a couple of
times a second), then each frame costs one translucent rectangle and one
texture copy per line.  The font is DejaVu Sans Mono (Debian:
fonts-dejavu-core), or whatever ``ROOTSTREAM_OVERLAY_FONT`` names; SDL_ttf
comes with pysdl2-dll.  When either is missing the overlay draws nothing and
``problem()`` says why: the stream must never stop over a missing font.

Every method runs on the presenter's thread (SDL's rule).
"""

from __future__ import annotations

import os
from pathlib import Path

import sdl2

FONT_SIZE = 14
MARGIN = 6
FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/dejavu/DejaVuSansMono.ttf",  # Fedora, Arch
    "/usr/share/fonts/TTF/DejaVuSansMono.ttf",
)


def find_font() -> str | None:
    chosen = os.environ.get("ROOTSTREAM_OVERLAY_FONT")
    candidates = (chosen,) if chosen else FONT_PATHS
    return next((path for path in candidates if path and Path(path).is_file()), None)


class TextOverlay:
    """Draws a few lines of text in the top-left corner of one SDL renderer."""

    def __init__(self, renderer) -> None:
        self._renderer = renderer
        self._ttf = None
        self._font = None
        self._problem: str | None = None  # None: not tried yet
        self._lines: tuple[str, ...] = ()
        self._textures: list[tuple[object, int, int]] = []  # (texture, w, h)

    def problem(self) -> str:
        """Empty when text can be drawn, else why not (loads the font on first call)."""
        if self._problem is None:
            self._problem = self._load()
        return self._problem

    def _load(self) -> str:
        try:
            import sdl2.sdlttf as ttf
        except ImportError as exc:  # pysdl2 raises it when no SDL2_ttf library loads
            return f"SDL2_ttf is not available ({exc})"
        path = find_font()
        if path is None:
            return "no DejaVu Sans Mono font (install fonts-dejavu-core or set " \
                   "ROOTSTREAM_OVERLAY_FONT to a .ttf file)"
        if ttf.TTF_WasInit() == 0 and ttf.TTF_Init() != 0:
            return f"SDL_ttf did not start: {ttf.TTF_GetError().decode(errors='replace')}"
        font = ttf.TTF_OpenFont(path.encode(), FONT_SIZE)
        if not font:
            ttf.TTF_Quit()
            return f"SDL_ttf cannot open {path}: {ttf.TTF_GetError().decode(errors='replace')}"
        self._ttf, self._font = ttf, font
        return ""

    def draw(self, lines: tuple[str, ...]) -> None:
        if not lines or self.problem():
            return
        if lines != self._lines:
            self._render(lines)
        if not self._textures:
            return
        width = max(w for _, w, _ in self._textures) + 2 * MARGIN
        height = sum(h for _, _, h in self._textures) + 2 * MARGIN
        renderer = self._renderer
        sdl2.SDL_SetRenderDrawBlendMode(renderer, sdl2.SDL_BLENDMODE_BLEND)
        sdl2.SDL_SetRenderDrawColor(renderer, 0, 0, 0, 170)
        sdl2.SDL_RenderFillRect(renderer, sdl2.SDL_Rect(0, 0, width, height))
        y = MARGIN
        for texture, w, h in self._textures:
            sdl2.SDL_RenderCopy(renderer, texture, None, sdl2.SDL_Rect(MARGIN, y, w, h))
            y += h

    def _render(self, lines: tuple[str, ...]) -> None:
        self._free_textures()
        self._lines = lines
        white = sdl2.SDL_Color(255, 255, 255, 255)
        for line in lines:
            surface = self._ttf.TTF_RenderUTF8_Blended(self._font, (line or " ").encode(), white)
            if not surface:
                continue
            try:
                texture = sdl2.SDL_CreateTextureFromSurface(self._renderer, surface)
                if texture:
                    self._textures.append((texture, surface.contents.w, surface.contents.h))
            finally:
                sdl2.SDL_FreeSurface(surface)

    def _free_textures(self) -> None:
        for texture, _, _ in self._textures:
            sdl2.SDL_DestroyTexture(texture)
        self._textures = []
        self._lines = ()

    def close(self) -> None:
        self._free_textures()
        if self._font:
            self._ttf.TTF_CloseFont(self._font)
            self._font = None
            self._ttf.TTF_Quit()


__all__ = ["TextOverlay", "find_font"]
