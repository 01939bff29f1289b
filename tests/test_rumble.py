"""Rumble without devices: folding effects into motor states, and who announces what.

The kernel and SDL ends are tested in test_rumble_uinput.py (in the VM) and
test_rumble_sdl.py; here the bookkeeping between them, with time passed in.
"""

from __future__ import annotations

from rootstream.input.client_service import ClientInput
from rootstream.input.host_service import HostInput
from rootstream.input.rumble import STOPPED, Motors, RumbleBook
from rootstream.input.rumble_link import RumbleSender
from rootstream.input.uinput_ff import FfRequest
from rootstream.protocol import Capability, PacketType, decode_control
from rootstream.protocol.control import Rumble

MS = 1_000_000


def upload(effect_id, strong, weak, length_ms):
    return FfRequest("upload", effect_id, strong, weak, length_ms)


def test_two_playing_effects_add_up_capped_and_the_longest_sets_the_duration():
    book = RumbleBook()
    assert book.apply(upload(0, 0x9000, 0x1000, 100), 0) is None
    assert book.apply(upload(1, 0x9000, 0x2000, 300), 0) is None
    assert book.apply(FfRequest("play", 0, count=1), 0) == Motors(0x9000, 0x1000, 100)
    assert book.apply(FfRequest("play", 1, count=1), 50 * MS) == Motors(0xFFFF, 0x3000, 300)
    assert book.state(120 * MS) == Motors(0x9000, 0x2000, 230)  # effect 0 ran out
    assert book.state(400 * MS) == STOPPED


def test_gain_scales_and_stop_erase_of_idle_effects_say_nothing():
    book = RumbleBook()
    book.apply(upload(0, 0xFFFF, 0x8000, 0), 0)
    assert book.apply(FfRequest("gain", count=0x8000), 0) is None  # nothing plays
    assert book.apply(FfRequest("play", 0, count=1), 0) == Motors(0x8000, 0x4000, 0)
    assert book.apply(FfRequest("play", 0, count=0), 0) == STOPPED
    assert book.apply(FfRequest("play", 0, count=0), 0) is None
    assert book.apply(FfRequest("erase", 0), 0) is None
    assert book.apply(FfRequest("play", 0, count=1), 0) is None  # erased: unknown id


def test_silence_forgets_what_played():
    book = RumbleBook()
    book.apply(upload(2, 1, 1, 0), 0)
    book.apply(FfRequest("play", 2, count=1), 0)
    assert book.silence()
    assert book.state(0) == STOPPED and not book.silence()


def test_the_sender_sends_twice_only_while_a_rumble_client_is_there():
    sent = []
    sender = RumbleSender()
    sender._on_motors(0, Motors(1, 2, 3), 0)
    assert sent == [] and sender.counters["rumble_unsent"] == 1
    sender.start(lambda ptype, payload: sent.append((ptype, decode_control(payload))))
    sender._on_motors(1, Motors(1, 2, 3), 5)
    assert sent == [(PacketType.CONTROL, Rumble(1, 1, 2, 3))] * 2
    sender.stop()
    sender._on_motors(1, Motors(1, 2, 3), 5)
    assert len(sent) == 2


def test_capabilities_are_announced_only_where_the_feature_works():
    assert ClientInput(log=lambda line: None).wants == Capability.RUMBLE
    assert ClientInput(log=lambda line: None, capture_options={"gamepads": False}).wants == 0
    assert HostInput("uinput").offers == Capability.RUMBLE
    assert HostInput("auto").offers == Capability.RUMBLE  # until an injector without pads opens
    assert HostInput("xtest").offers == 0
    assert HostInput("record").offers == 0


def test_a_client_without_a_window_counts_rumble_and_goes_on():
    client = ClientInput(log=lambda line: None)
    client.on_control(Rumble(0, 0xFFFF, 0xFFFF, 100))
    client.session_ended("bye")
    assert client.rumble.counters["rumble_no_controller"] == 1


def test_doctor_says_why_the_host_cannot_rumble(tmp_path):
    from rootstream.input.rumble_link import probe_rumble

    (host, ok, reason), (client, client_ok, _) = probe_rumble(str(tmp_path / "uinput"))
    assert (host, ok, client) == ("host", False, "client")
    assert "not readable and writable" in reason and "udev" in reason
