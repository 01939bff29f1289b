"""`rootstream bench`: measure a host and this client across a real network.

The client side of a benchmark, one module per job:

- ``plan``: the phases (size, frame rate, bitrate, duration; an idle phase);
- ``clock``: the host-client clock offset from ping/pong exchanges (NTP
  style: the exchanges with the smallest round trip, with an error bound);
- ``meter``: a client service measuring one phase (latency read from the
  test pattern's pixels, the split by stage, round trip, loss, CPU);
- ``idle``: the idle phase: pings without a session, the bare network;
- ``run``: the driver: one client session per phase against a normal host;
- ``report``: the JSON document (versioned), the terminal table, --compare;
- ``machine`` and ``cpu``: describing a machine and sampling CPU time, used
  by the host too (its config and pongs carry them).

This package is kept free of imports at package level: the host imports
``machine`` and ``cpu`` without pulling in the client.
"""
