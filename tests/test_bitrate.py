"""The adaptive bitrate controller, the client's path figures and the host service."""

from __future__ import annotations

import pytest

from rootstream.host.adaptive import AdaptiveBitrate
from rootstream.net.bitrate import (
    CREEP_FACTOR,
    INCREASE_HOLD_S,
    NEAR_CONGESTION,
    BitrateController,
    FecPolicy,
    PathReport,
    counter_delta,
)
from rootstream.net.feedback import PathMonitor
from rootstream.protocol import Bitrate, Config, PacketType, StatsReport, decode_control
from rootstream.session import SessionInfo

S = 1_000_000_000
CLEAR = PathReport(loss=0.0, queue_delay_ms=1.0, receive_bps=8e6, send_bps=8e6)


def drive(controller, reports, start_s=0.0):
    decisions = []
    for i, report in enumerate(reports):
        decisions.append(controller.update(report, int((start_s + i) * S)))
    return decisions


def test_a_bottleneck_is_found_in_one_report_and_the_target_goes_under_it():
    controller = BitrateController(30_000_000, 1_000_000)
    capped = PathReport(loss=0.3, queue_delay_ms=60, delay_trend_ms=20,
                        receive_bps=20e6, send_bps=30e6)
    decision = controller.update(capped, 0)
    assert decision.state == "overuse" and decision.changed
    assert controller.target_bps < 20_000_000
    assert controller.target_bps >= 1_000_000


@pytest.mark.parametrize("report, why", [
    (PathReport(queue_delay_ms=45), "queue delay"),
    (PathReport(queue_delay_ms=20, delay_trend_ms=8), "delay growing"),
    (PathReport(loss=0.2), "loss"),
    (PathReport(receive_bps=5e6, send_bps=10e6), "received"),
])
def test_each_sign_of_congestion_lowers_the_rate(report, why):
    controller = BitrateController(10_000_000, 500_000)
    decision = controller.update(report, 0)
    assert decision.state == "overuse" and why in decision.reason
    assert controller.target_bps < 10_000_000


def test_moderate_loss_with_a_standing_queue_is_a_full_buffer():
    controller = BitrateController(30_000_000, 500_000)
    decision = controller.update(PathReport(loss=0.06, queue_delay_ms=18, receive_bps=20e6,
                                            send_bps=21e6), 0)
    assert decision.state == "overuse" and "queued" in decision.reason
    assert controller.target_bps == int(20e6 * 0.85)


def test_moderate_random_loss_is_left_to_fec():
    controller = BitrateController(10_000_000, 500_000)
    for decision in drive(controller, [PathReport(loss=0.06, queue_delay_ms=2,
                                                  receive_bps=9.4e6, send_bps=10e6)] * 5):
        assert decision.state == "hold" and not decision.changed
    assert controller.target_bps == 10_000_000


def test_raises_slowly_only_after_a_quiet_spell_and_never_past_the_ceiling():
    controller = BitrateController(20_000_000, 500_000, start_bps=10_000_000)
    # A queue builds while 9 Mbit/s arrive: the bottleneck is about there.
    controller.update(PathReport(queue_delay_ms=80, receive_bps=9e6, send_bps=10e6), 0)
    low = controller.target_bps
    assert low == int(9e6 * 0.85)
    # Within the hold after a decrease: no increase even on a clear path.
    early = controller.update(PathReport(receive_bps=low, send_bps=low), int(S * 1.0))
    assert not early.changed and controller.target_bps == low
    targets, arrivals = [], []
    for second in range(int(INCREASE_HOLD_S) + 1, 200):
        arriving = controller.target_bps * 0.7  # the encoder spends 70 % of its target
        controller.update(PathReport(receive_bps=arriving, send_bps=arriving), second * S)
        targets.append(controller.target_bps)
        arrivals.append(arriving)
    steps = [(arriving, b / a) for arriving, a, b
             in zip(arrivals, [low, *targets], targets, strict=False) if b != a]
    assert steps and max(step for _, step in steps) <= 1.08 + 1e-9, \
        "an increase is a few percent per report"
    # Far below what arrived at congestion it climbs at full pace...
    assert any(step > CREEP_FACTOR + 1e-9 for arriving, step in steps if arriving < 6e6)
    # ...and close to it (compared in arrivals, not targets) it only creeps.
    near = [step for arriving, step in steps if arriving * 1.08 > NEAR_CONGESTION * 9e6]
    assert near and max(near) <= CREEP_FACTOR + 1e-9
    assert targets[-1] == 20_000_000 and max(targets) == 20_000_000


def test_an_idle_encoder_does_not_let_the_target_run_away():
    controller = BitrateController(50_000_000, 500_000, start_bps=2_000_000)
    drive(controller, [PathReport(receive_bps=1e6, send_bps=1e6)] * 20)
    assert controller.target_bps == 2_000_000  # 1.5 x what arrives is below the target


def test_floor_holds_under_any_congestion():
    controller = BitrateController(10_000_000, 2_000_000)
    drive(controller, [PathReport(loss=0.9, receive_bps=1e5, send_bps=1e7)] * 10)
    assert controller.target_bps == 2_000_000


def test_counter_delta_wraps():
    assert counter_delta(5, 0xFFFFFFFE) == 7
    assert counter_delta(100, 40) == 60


def test_path_monitor_cancels_the_clock_offset_and_sees_a_queue_grow():
    monitor = PathMonitor()
    offset_ms = 0xFFFFFF00  # the host's clock is far from ours and wraps in between
    now_ns = 10 * S
    figures = []
    for second in range(4):
        queue_ms = [0, 0, 30, 60][second]
        for frame in range(60):
            arrival = now_ns + frame * 16_666_667
            capture_ms = (arrival // 1_000_000 + offset_ms - 5 - queue_ms) % (1 << 32)
            monitor.frame(capture_ms, 3000, arrival)
        now_ns += S
        figures.append(monitor.sample(now_ns, received_bytes=(second + 1) * 1_000_000))
    assert [f.queue_delay_us for f in figures] == [0, 0, 30_000, 60_000]
    assert figures[2].delay_trend_us == 30_000
    assert figures[1].receive_kbps == 8000


def test_path_monitor_without_frames_reports_only_the_rate():
    monitor = PathMonitor()
    monitor.sample(0, 0)
    figures = monitor.sample(S // 2, 125_000)
    assert (figures.receive_kbps, figures.queue_delay_us, figures.delay_trend_us) == (2000, 0, 0)


class _Clock:
    def __init__(self):
        self.ns = 0

    def __call__(self):
        return self.ns


def test_the_service_lowers_the_encoder_and_tells_the_client():
    clock, sent, applied, messages = _Clock(), [0], [], []
    service = AdaptiveBitrate(30_000_000, 1_000_000, apply=applied.append,
                              sent_bytes=lambda: sent[0], log=lambda line: None, clock=clock)
    service.session_started(SessionInfo(("127.0.0.1", 1), 1, "c", None),
                            lambda ptype, payload: messages.append((ptype, payload)))
    assert applied == [30_000_000]
    received = lost = 0
    for second in range(1, 4):
        clock.ns = second * S
        sent[0] += 30_000_000 // 8  # the host sent 30 Mbit/s...
        received += 1800
        lost += 900  # ...a third of it was dropped at a 20 Mbit/s bottleneck
        service.on_control(StatsReport(1000, 60, 60, 0, 0, received, lost, 20_000, 0, 0,
                                       50_000, 10_000))
    assert len(applied) >= 2 and applied[-1] < 20_000_000
    ptype, payload = messages[-1]
    assert ptype == PacketType.CONTROL
    assert decode_control(payload) == Bitrate(applied[-1] // 1000)
    assert service.last_report.loss == pytest.approx(1 / 3)
    assert service.last_report.send_bps == pytest.approx(30e6)


def test_loss_without_a_queue_lowers_by_half_the_loss_not_to_what_arrived():
    """A 300 ms outage loses 30 % of a report's datagrams but says nothing of capacity."""
    controller = BitrateController(10_000_000, 500_000)
    decision = controller.update(PathReport(loss=0.3, queue_delay_ms=0, receive_bps=6e6,
                                            send_bps=9e6), 0)
    assert decision.state == "overuse" and "loss" in decision.reason
    assert controller.target_bps == 8_500_000


def test_fec_follows_loss_up_at_once_and_down_slowly():
    policy = FecPolicy(0.2)
    assert policy.update(0.0) is None and policy.share == 0.2
    assert policy.update(0.05) == pytest.approx(0.35)
    assert policy.update(0.10) == pytest.approx(0.5)
    assert policy.update(0.30) is None and policy.share == pytest.approx(0.5)  # the cap
    shares = [policy.update(0.0) for _ in range(30)]
    changes = [s for s in shares if s is not None]
    assert changes == sorted(changes, reverse=True) and len(changes) >= 3, "down in steps"
    assert policy.share == pytest.approx(0.2)


def test_fec_holds_while_congested_and_stays_off_when_off():
    policy = FecPolicy(0.2)
    assert policy.update(0.2, congested=True) is None and policy.share == 0.2
    off = FecPolicy(0.0)
    assert off.update(0.3) is None and off.share == 0.0


def test_the_service_raises_parity_on_random_loss():
    clock, sent, shares, applied = _Clock(), [0], [], []
    service = AdaptiveBitrate(10_000_000, 1_000_000, apply=applied.append,
                              sent_bytes=lambda: sent[0], apply_fec=shares.append,
                              fec_share=0.2, log=lambda line: None, clock=clock)
    service.session_started(SessionInfo(("127.0.0.1", 1), 1, "c", None), lambda *a: None)
    clock.ns, sent[0] = S, 12_000_000 // 8
    service.on_control(StatsReport(1000, 60, 60, 0, 0, 950, 50, 11_400, 0, 0, 1_000, 0))
    assert shares == [0.2, pytest.approx(0.35)]
    # 5 % random loss is FEC's job: the wire rate holds (10 Mbit/s + 20 % parity)...
    assert service.controller.target_bps == 12_000_000
    # ...and the encoder makes room for the extra parity within it.
    assert applied == [10_000_000, int(12_000_000 / 1.35)]


def test_the_service_holds_parity_while_it_lowers_the_rate():
    clock, sent, shares = _Clock(), [0], []
    service = AdaptiveBitrate(30_000_000, 1_000_000, apply=lambda bps: None,
                              sent_bytes=lambda: sent[0], apply_fec=shares.append,
                              fec_share=0.2, log=lambda line: None, clock=clock)
    service.session_started(SessionInfo(("127.0.0.1", 1), 1, "c", None), lambda *a: None)
    clock.ns, sent[0] = S, 30_000_000 // 8
    # A third lost at a bottleneck: the rate drops, the parity does not grow.
    service.on_control(StatsReport(1000, 60, 60, 0, 0, 1800, 900, 20_000, 0, 0, 5_000, 0))
    assert service.encoder_bps < 30_000_000
    assert shares == [0.2]


def test_after_an_outage_the_rate_climbs_back_at_full_pace():
    controller = BitrateController(10_000_000, 500_000)
    controller.update(PathReport(loss=0.3, receive_bps=7e6, send_bps=10e6), 0)
    low = controller.target_bps
    targets = drive(controller, [PathReport(receive_bps=8e6, send_bps=8e6)] * 6,
                    start_s=INCREASE_HOLD_S + 1)
    assert targets[0].target_bps == int(low * 1.08), "no creeping: the outage set no limit"


def test_a_session_that_asked_for_a_rate_keeps_it_as_its_ceiling():
    # rootstream bench asks for each phase's rate in its hello; the host
    # announces it in config, and adaptation must not push past it.
    clock, applied = _Clock(), []
    service = AdaptiveBitrate(10_000_000, 500_000, apply=applied.append,
                              sent_bytes=lambda: 0, log=lambda line: None, clock=clock)
    service.session_started(SessionInfo(("127.0.0.1", 1), 1, "c", Config(bitrate_kbps=5000)),
                            lambda *a: None)
    assert applied == [5_000_000] and service.ceiling_bps == 5_000_000
    service.session_started(SessionInfo(("127.0.0.1", 1), 2, "c", Config(bitrate_kbps=20_000)),
                            lambda *a: None)
    assert applied[-1] == 20_000_000
    service.session_started(SessionInfo(("127.0.0.1", 1), 3, "c", None), lambda *a: None)
    assert applied[-1] == 10_000_000  # no announced rate: the host's own
