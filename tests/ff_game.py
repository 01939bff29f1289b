"""A game's side of force feedback: what SDL or a game does on a pad's event node.

Plain ioctls and writes on /dev/input/eventN (EVIOCSFF uploads an effect and
returns its id, writing an EV_FF event plays/stops it or sets the gain,
EVIOCRMFF erases it), so the rumble tests drive the host's virtual pad
exactly as a game would, with nothing between the test and the kernel.
"""

from __future__ import annotations

import fcntl
import os

from rootstream._native.drm_ioctl import ioc
from rootstream.input.uinput_ff import EV_FF, FF_EFFECT, FF_GAIN, FF_RUMBLE, INPUT_EVENT

EVIOCSFF = ioc(1, "E", 0x80, FF_EFFECT.size)  # _IOW('E', 0x80, struct ff_effect)
EVIOCRMFF = ioc(1, "E", 0x81, 4)  # _IOW('E', 0x81, int)


class Game:
    """A force-feedback client of one event node."""

    def __init__(self, path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)

    def upload(self, strong: int, weak: int, length_ms: int, effect_id: int = -1) -> int:
        """Upload (or with ``effect_id``, change) a rumble effect; returns its id."""
        body = strong.to_bytes(2, "little") + weak.to_bytes(2, "little") + bytes(28)
        effect = bytearray(FF_EFFECT.pack(FF_RUMBLE, effect_id, 0, 0, 0, length_ms, 0, body))
        fcntl.ioctl(self.fd, EVIOCSFF, effect, True)  # the kernel writes the id back
        return FF_EFFECT.unpack(effect)[1]

    def play(self, effect_id: int, count: int = 1) -> None:
        os.write(self.fd, INPUT_EVENT.pack(0, 0, EV_FF, effect_id, count))

    def stop(self, effect_id: int) -> None:
        self.play(effect_id, 0)

    def gain(self, gain: int) -> None:
        os.write(self.fd, INPUT_EVENT.pack(0, 0, EV_FF, FF_GAIN, gain))

    def erase(self, effect_id: int) -> None:
        fcntl.ioctl(self.fd, EVIOCRMFF, effect_id)

    def close(self) -> None:
        os.close(self.fd)
