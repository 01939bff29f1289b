"""Option parsers shared by several commands."""

from __future__ import annotations

import re

import click

_SIZE = re.compile(r"^(\d{2,5})[xX](\d{2,5})$")


def parse_size(ctx, param, value: str) -> tuple[int, int]:
    match = _SIZE.match(value.strip())
    if not match:
        raise click.BadParameter("use WIDTHxHEIGHT, e.g. 1920x1080")
    width, height = int(match.group(1)), int(match.group(2))
    if width % 2 or height % 2:
        raise click.BadParameter("width and height must be even (NV12 chroma is 2x2)")
    return width, height
