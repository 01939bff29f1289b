"""The policy for one picture on many paths (rootstream.host.room_policy)."""

from __future__ import annotations

from rootstream.host.room_policy import LAGGING_REPORTS, SHARED_FEC_CEILING, RoomPolicy
from rootstream.host.viewers import Viewer, Viewers
from rootstream.net.fanout import ViewerOutlet
from rootstream.net.udp import UdpTransport
from rootstream.protocol import StatsReport


def _report(received: int, lost: int) -> StatsReport:
    return StatsReport(datagrams_received=received, datagrams_lost=lost)


def test_a_lossy_later_viewer_raises_the_parity_within_a_bound_then_is_named_once():
    applied, said = [], []
    policy = RoomPolicy(0.2, apply_fec=applied.append, log=said.append)
    viewer = Viewer(("127.0.0.1", 5000), 1, "tv", 0.0, 0.0)
    with UdpTransport(("127.0.0.1", 0)) as transport:
        viewer.outlet = ViewerOutlet(transport, viewer.address)
        try:
            received = lost = 0
            for _ in range(LAGGING_REPORTS + 2):
                received, lost = received + 700, lost + 300  # 30 % loss every report
                policy.report(viewer, _report(received, lost))
            # Lowest priority: it holds one frame, so a second one waiting is dropped.
            assert viewer.outlet._queue.maxsize == 1
        finally:
            viewer.outlet.close()
    assert applied and max(applied) == SHARED_FEC_CEILING  # more parity, but bounded
    assert len(said) == 1 and "127.0.0.1:5000 loses 30%" in said[0]
    assert viewer.counts["lagging"] == 1
    # The first viewer's need still wins when it is larger.
    policy.first_fec(0.5)
    assert applied[-1] == 0.5
    policy.first_fec(0.2)
    policy.forget(viewer)  # gone: the parity is the first viewer's again
    assert applied[-1] == 0.2


def test_a_clean_later_viewer_changes_nothing():
    applied = []
    policy = RoomPolicy(0.2, apply_fec=applied.append, log=lambda line: None)
    viewer = Viewer(("127.0.0.1", 5001), 2, "tv", 0.0, 0.0)
    for step in range(1, 6):
        policy.report(viewer, _report(1000 * step, 0))
    assert applied == [] and not viewer.counts


def test_the_table_answers_whose_datagram_and_who_is_first():
    viewers = Viewers(2)
    a = Viewer(("127.0.0.1", 1), 1, "a", 0.0, 0.0)
    b = Viewer(("127.0.0.1", 2), 2, "b", 0.0, 0.0)
    viewers.add(a)
    viewers.add(b)
    assert viewers.full and viewers.of(("127.0.0.1", 2)) is b and viewers.of(("x", 1)) is None
    assert viewers.is_first(a) and not viewers.is_first(b) and viewers.list() == (a, b)
    assert viewers.remove(a) is True  # it was the first: b is now
    assert viewers.first() is b and not viewers.full
