"""The sender and receiver stages over real loopback sockets, and the keyframe rule.

One frame goes into VideoSender.send_frame for two destinations: its parity
is computed once, data leaves before parity, and each destination's
VideoReceiver gives back the whole frame in one call.
"""

from __future__ import annotations

import os
import time

from rootstream.client.video import IDR_RETRY_S, KeyframeRule
from rootstream.encode.base import EncodedUnit
from rootstream.frame import HostStamps
from rootstream.net.receiver import VideoReceiver
from rootstream.net.sender import VideoSender
from rootstream.net.udp import UdpTransport
from rootstream.protocol import FragmentHeader, IdrReason, PacketType
from rootstream.protocol import video as video_protocol


def _receive_all(transport: UdpTransport, receiver: VideoReceiver):
    """Datagrams until the frame completes: (flags in arrival order, the frame)."""
    flags, frame = [], None
    deadline = time.monotonic() + 5
    while frame is None and time.monotonic() < deadline:
        got = transport.receive(timeout=1)
        assert got is not None, "a datagram went missing on loopback"
        assert got.header.ptype == PacketType.VIDEO
        flags.append(FragmentHeader.parse(got.payload).flags)
        frame = receiver.push(got.payload, got.header.timestamp_ms, got.received_ns)
    return flags, frame


def test_one_frame_to_two_sessions_is_cut_and_protected_once(monkeypatch):
    calls = []
    real_parity = video_protocol._encode_parity

    def counted(*args):
        calls.append(args[2:])
        return real_parity(*args)

    monkeypatch.setattr(video_protocol, "_encode_parity", counted)
    data = os.urandom(40_000)
    unit = EncodedUnit(data=data, keyframe=True, pts=0)
    stamps = HostStamps(captured=time.monotonic_ns() - 3_000_000)
    stamps.encoded = stamps.captured + 2_000_000
    with UdpTransport(("127.0.0.1", 0)) as host, UdpTransport(("127.0.0.1", 0)) as one, \
            UdpTransport(("127.0.0.1", 0)) as two:
        sender = VideoSender(host, max_payload=1384, fec_share=0.2, pacing=False)
        size = sender.send_frame([unit], stamps, [one.address, two.address],
                                 bitrate_bps=10_000_000, fps=60)
        assert size == len(data) and stamps.sent >= stamps.encoded
        assert len(calls) == 1  # the parity arithmetic, once for both sessions
        for transport in (one, two):
            flags, frame = _receive_all(transport, VideoReceiver())
            assert frame is not None and bytes(frame.data) == data and frame.keyframe
            assert frame.host_us == 2000
            # Data first: the frame completes before any parity arrives.
            assert not any(f & video_protocol.FLAG_PARITY for f in flags)


def test_the_receiver_counts_frames_and_keeps_totals_across_sessions():
    receiver = VideoReceiver()
    fragmenter = video_protocol.VideoFragmenter(fec_share=0.0)
    now = time.monotonic_ns()
    for payload in fragmenter.fragment(b"x" * 5000, keyframe=True):
        frame = receiver.push(payload, 1234, now)
    assert frame is not None and receiver.frames_received == 1
    # Skip a frame id: the next complete frame reports the loss.
    fragmenter.next_frame_id += 1
    for payload in fragmenter.fragment(b"y" * 100, keyframe=False):
        frame = receiver.push(payload, 1250, now)
    assert frame.lost_before == 1 and receiver.frames_lost == 1
    receiver.new_session()
    assert receiver.session_stats.frames_lost == 0 and receiver.frames_lost == 1


def test_the_keyframe_rule_asks_at_once_then_every_retry_interval():
    rule = KeyframeRule()
    assert rule.due(100.0) is None  # nothing wanted
    rule.want()
    assert rule.wanted and rule.due(100.0) == IdrReason.FRAME_LOST
    assert rule.due(100.0 + IDR_RETRY_S / 2) is None  # asked a moment ago
    assert rule.due(100.0 + IDR_RETRY_S * 1.5) == IdrReason.FRAME_LOST
    rule.want(IdrReason.STARTUP, urgent=True)  # e.g. after a reconnect: ask now
    assert rule.due(100.0 + IDR_RETRY_S * 1.6) == IdrReason.STARTUP
    rule.satisfied()
    assert not rule.wanted and rule.due(200.0) is None
