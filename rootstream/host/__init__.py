"""The host: one session loop built from the parts (capture, encode, net, crypto).

- ``control``: the session's control channel (handshake, hello/config,
  keepalives, keyframe requests, stats, bye, liveness, services, reports);
- ``video``: the picture's two stage threads, capture and encode, handing
  each encoded frame to the sender stage (rootstream.net.sender);
- ``adaptive``: the bitrate and FEC share that follow the client's reports.
"""

from rootstream.host.control import Host
from rootstream.host.options import HostOptions, default_host_name

__all__ = ["Host", "HostOptions", "default_host_name"]
