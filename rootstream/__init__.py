"""rootstream: low-latency Linux game streaming, host and client."""

from rootstream.errors import RootStreamError

__version__ = "0.1.0"

__all__ = ["RootStreamError", "__version__"]
