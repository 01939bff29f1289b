"""The one exception family of rootstream.

Every error the library raises on purpose derives from RootStreamError, so the
command line can turn any of them into one plain sentence and a hint.  Each
subclass names the stage that failed.
"""


class RootStreamError(Exception):
    """Base of every deliberate rootstream error.

    ``hint`` is a short suggestion for the user (what to install, which flag to
    try); ``details`` is a list of extra lines, e.g. one per backend tried.
    """

    def __init__(self, message: str, *, hint: str = "", details: list[str] | None = None):
        super().__init__(message)
        self.hint = hint
        self.details = list(details or [])


class ProtocolError(RootStreamError):
    """A datagram or message does not follow the wire protocol."""


class CaptureError(RootStreamError):
    """A capture backend could not be opened or could not grab a frame."""


class EncodeError(RootStreamError):
    """No encoder could be opened, or encoding a frame failed."""


class DecodeError(RootStreamError):
    """The decoder could not be opened or rejected the bitstream."""


class PresentError(RootStreamError):
    """A presenter (window, KMS output) could not be opened."""


class InputError(RootStreamError):
    """Input capture or injection failed."""


class CryptoError(RootStreamError):
    """Sealing, opening or key agreement failed."""


class PairingError(CryptoError):
    """Pairing failed: wrong code, too many tries, unknown peer."""


class NetworkError(RootStreamError):
    """A socket could not be opened or the peer went silent."""


class AudioError(RootStreamError):
    """Audio capture, encoding or playback failed."""
