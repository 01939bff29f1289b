"""The client: one session loop built from the parts (net, decode, present, crypto).

- ``control``: connecting, the control channel, liveness and reconnecting,
  and the presenter loop on the caller's thread;
- ``video``: the decode stage and the one owner of the keyframe rule;
- ``report``: what the client tells the host (stats) and its own reports;
- ``options``: what a client is asked to do and what it did;
- ``pair``: pairing with a host (`rootstream pair`).
"""

from rootstream.client.control import Client
from rootstream.client.options import ClientOptions, ClientResult

__all__ = ["Client", "ClientOptions", "ClientResult"]
