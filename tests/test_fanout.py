"""The outlets that send later viewers' copies (rootstream.net.fanout): a real
UDP socket, a real thread, its real scheduling priority."""

import os
import socket
import time

from rootstream.net.fanout import OUTLET_NICE, ViewerOutlet
from rootstream.net.udp import UdpTransport


def test_an_outlet_sends_each_frame_from_a_thread_below_the_encode_threads_priority():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as viewer, \
            UdpTransport(("127.0.0.1", 0)) as transport:
        viewer.bind(("127.0.0.1", 0))
        viewer.settimeout(5)
        outlet = ViewerOutlet(transport, viewer.getsockname(), pacing=False)
        try:
            assert outlet.post([b"a" * 100, b"b" * 100], [b"p" * 100], capture_ms=1,
                               bitrate_bps=10_000_000, interval_ns=16_666_667)
            got = [viewer.recvfrom(2048)[0] for _ in range(3)]
            assert len(got) == 3
            # The thread lowered itself once it ran: nice +5 over the process's own.
            base = os.getpriority(os.PRIO_PROCESS, 0)
            deadline = time.monotonic() + 2
            while outlet.frames_sent < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert outlet.frames_sent == 1
            assert OUTLET_NICE == 5  # unless ROOTSTREAM_OUTLET_NICE says otherwise
            assert os.getpriority(os.PRIO_PROCESS, outlet._thread.native_id) == \
                min(19, base + OUTLET_NICE)
        finally:
            outlet.close()
