"""The client: one session loop built from the parts (net, decode, present, crypto).

- ``control``: connecting, the control channel, liveness and reconnecting,
  and the presenter loop on the caller's thread;
- ``video``: the decode stage and the one owner of the keyframe rule;
- ``report``: what the client tells the host (stats) and its own reports.
"""

from rootstream.client.control import Client, ClientOptions, ClientResult

__all__ = ["Client", "ClientOptions", "ClientResult"]
