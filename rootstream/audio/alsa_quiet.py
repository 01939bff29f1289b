"""Keep alsa-lib from printing its own errors on stderr.

SDL tries ALSA among its audio drivers.  On a machine without a sound card
alsa-lib reports each failed lookup itself, eight "ALSA lib confmisc.c:..."
lines on stderr, before SDL hands us the one error that matters (which we
report with a hint).  alsa-lib lets a program replace that printer:
``snd_lib_error_set_handler`` takes a function it calls instead; ours does
nothing.  SDL loads the same libasound.so.2, so the handler is shared.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# void handler(const char *file, int line, const char *function, int err,
#              const char *fmt, ...): the variadic tail is never read.
_HANDLER_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                                 ctypes.c_int, ctypes.c_char_p)
_handler = None  # kept alive for as long as alsa-lib may call it


def _ignore(_file, _line, _function, _err, _fmt) -> None:
    pass


def silence_alsa() -> bool:
    """Install the silent handler once; False when there is no libasound."""
    global _handler
    if _handler is not None:
        return True
    name = ctypes.util.find_library("asound") or "libasound.so.2"
    try:
        library = ctypes.CDLL(name)
        library.snd_lib_error_set_handler.argtypes = [_HANDLER_TYPE]
    except (OSError, AttributeError):
        return False
    handler = _HANDLER_TYPE(_ignore)
    if library.snd_lib_error_set_handler(handler) != 0:
        return False
    _handler = handler
    return True
