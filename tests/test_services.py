"""Services plug into both session loops and see exactly their traffic."""

from __future__ import annotations

import threading
import time

from rootstream.client import Client, ClientOptions
from rootstream.host import Host, HostOptions
from rootstream.protocol import PacketType, StatsReport
from rootstream.session import ClientService, Service


class Recorder(ClientService):
    def __init__(self, send_type=None):
        self.events: list[tuple] = []
        self.send = None
        self.send_type = send_type
        self.ticks = 0

    def session_started(self, session, send):
        self.events.append(("started", session.config.width))
        self.send = send

    def handle(self, header, payload):
        self.events.append(("datagram", header.ptype, bytes(payload)))
        return True

    def on_control(self, message):
        if isinstance(message, StatsReport):
            self.events.append(("stats",))

    def tick(self, now_ns):
        self.ticks += 1
        if self.send and self.send_type and self.ticks % 10 == 0:
            self.send(self.send_type, b"ping-from-service")

    def attach_presenter(self, presenter):
        self.events.append(("presenter", presenter.name))

    def session_ended(self, reason):
        self.events.append(("ended", reason))


def test_services_on_both_sides_exchange_their_own_datagrams(udp_port):
    host_side = Recorder(send_type=PacketType.AUDIO)
    client_side = Recorder(send_type=PacketType.INPUT)
    host = Host(HostOptions(source="test", size=(640, 360), fps=30, bind="127.0.0.1",
                            port=udp_port, max_sessions=1, stats_interval=60),
                log=lambda line: None, services=[host_side])
    serving = threading.Thread(target=host.serve)
    serving.start()
    try:
        client = Client(ClientOptions(host=("127.0.0.1", udp_port), present="null",
                                      seconds=2.5, stats_interval=60),
                        log=lambda line: None, services=[client_side])
        result = client.run()
    finally:
        serving.join(10)
        host.close()
    assert result.frames_presented > 0
    assert host_side.events[0] == ("started", 640)
    assert ("datagram", PacketType.INPUT, b"ping-from-service") in host_side.events
    assert ("stats",) in host_side.events
    assert host_side.events[-1] == ("ended", "bye")
    assert client_side.events[0] == ("started", 640)
    assert ("presenter", "null") in client_side.events
    assert ("datagram", PacketType.AUDIO, b"ping-from-service") in client_side.events
    assert client_side.events[-1][0] == "ended"


def test_a_datagram_no_service_takes_is_counted_not_fatal(udp_port):
    class Refuser(Service):
        pass

    host = Host(HostOptions(source="test", size=(640, 360), fps=30, bind="127.0.0.1",
                            port=udp_port, max_sessions=1, stats_interval=60),
                log=lambda line: None, services=[Refuser()])
    serving = threading.Thread(target=host.serve)
    serving.start()
    sender = Recorder(send_type=PacketType.INPUT)
    try:
        Client(ClientOptions(host=("127.0.0.1", udp_port), present="null", seconds=1.5,
                             stats_interval=60), log=lambda line: None,
               services=[sender]).run()
        time.sleep(0.1)
    finally:
        serving.join(10)
        host.close()
    assert host.stats.totals.get("dropped_unexpected", 0) >= 1
