"""Discovery's decisions without a network: records, names, choices, the trust entry, WoL bytes."""

from __future__ import annotations

import json

import pytest

from rootstream.crypto.identity import fingerprint
from rootstream.crypto.trust import TrustStore
from rootstream.discovery.announce import announce_refusal, instance_label, server_name
from rootstream.discovery.browse import FoundHost, host_from_record
from rootstream.discovery.choose import choose, default_choice, label_for, mark_paired
from rootstream.errors import NetworkError
from rootstream.net.neighbour import _from_proc_arp
from rootstream.net.wake import format_mac, magic_packet, parse_mac

KEY_A, KEY_B, KEY_C = bytes(range(32)), bytes(range(1, 33)), bytes(range(2, 34))
FP_A, FP_B, FP_C = fingerprint(KEY_A), fingerprint(KEY_B), fingerprint(KEY_C)


def found(name, fp, address="10.0.0.2", port=47100):
    return FoundHost(name, fp, (address,), port)


@pytest.fixture
def trust(tmp_path):
    store = TrustStore.open(tmp_path)
    store.add("host gamebox", KEY_A)
    store.add("laptop", KEY_C)  # a client this machine hosts for: not a host entry
    return store


def test_a_record_becomes_a_found_host_and_strangers_are_dropped():
    host = host_from_record({"v": "1", "name": "gamebox", "fp": FP_A.lower()}, ["10.0.0.2"],
                            47100)
    assert host == found("gamebox", FP_A)
    assert host.endpoint() == "10.0.0.2:47100"
    for bad in ({"name": "gamebox"}, {"fp": FP_A}, {"name": "x\x1b[31m", "fp": FP_A},
                {"name": "gamebox", "fp": "ABCD"}, {"name": "n" * 65, "fp": FP_A}):
        assert host_from_record(bad, ["10.0.0.2"], 47100) is None
    assert host_from_record({"name": "g", "fp": FP_A}, [], 47100) is None
    assert host_from_record({"name": "g", "fp": FP_A}, ["10.0.0.2"], 0) is None


def test_paired_hosts_come_first_and_carry_their_label(trust):
    hosts = mark_paired([found("zeta", FP_B), found("other", FP_C), found("Gamebox", FP_A)],
                        trust.list())
    assert [h.name for h in hosts] == ["Gamebox", "other", "zeta"]
    assert [h.paired_as for h in hosts] == ["gamebox", "", ""]  # "laptop" is a client


def test_choose_by_name_label_or_fingerprint(trust):
    hosts = mark_paired([found("den", FP_A), found("attic", FP_B)], trust.list())
    assert choose(hosts, "den").fingerprint == FP_A
    assert choose(hosts, "gamebox").fingerprint == FP_A  # the label it was paired under
    assert choose(hosts, FP_B.lower().replace("-", "")).name == "attic"
    with pytest.raises(NetworkError, match="no host named 'cellar' answered") as info:
        choose(hosts, "cellar")
    assert len(info.value.details) == 2


def test_a_name_two_identities_claim_is_refused_with_both_fingerprints():
    hosts = [found("gamebox", FP_A, "10.0.0.2"), found("gamebox", FP_B, "10.0.0.3")]
    with pytest.raises(NetworkError, match="2 hosts claim the name 'gamebox'") as info:
        choose(hosts, "gamebox")
    assert "fingerprint" in info.value.hint
    assert any(FP_A in line for line in info.value.details)
    assert any(FP_B in line for line in info.value.details)
    # One identity seen twice (two addresses) is one host, not a clash.
    assert choose([hosts[0], found("gamebox", FP_A, "10.0.1.2")], "gamebox").fingerprint == FP_A


def test_default_choice(trust):
    one_paired = mark_paired([found("den", FP_A), found("attic", FP_B)], trust.list())
    assert default_choice(one_paired, pairing=False).name == "den"
    assert default_choice(one_paired, pairing=True) is None  # which one to pair: ask
    lone_stranger = mark_paired([found("attic", FP_B)], trust.list())
    assert default_choice(lone_stranger, pairing=True).name == "attic"
    assert default_choice(lone_stranger, pairing=False).name == "attic"  # then: pair first
    strangers = mark_paired([found("attic", FP_B), found("cellar", FP_C)], trust.list())
    assert default_choice(strangers, pairing=False) is None


def test_a_second_host_under_a_paired_name_is_labelled_by_its_fingerprint(trust):
    hosts = mark_paired([found("gamebox", FP_A), found("gamebox", FP_B),
                         found("attic", FP_C)], trust.list())
    labels = {h.fingerprint: label_for(h, trust.list()) for h in hosts}
    assert labels == {FP_A: "gamebox", FP_B: FP_B, FP_C: "attic"}


def test_announcement_names():
    assert announce_refusal("127.0.0.1") and announce_refusal("::1")
    assert announce_refusal("localhost")
    assert announce_refusal("0.0.0.0") is None and announce_refusal("10.0.0.2") is None
    label = instance_label("den.pc " + "é" * 40, FP_A)
    assert len(label.encode("utf-8")) <= 63 and label.endswith(f" [{FP_A[:9]}]")
    assert "." not in label
    assert server_name(FP_A).endswith(".local.") and "-" not in server_name(FP_A)[11:-7]


def test_the_trust_entry_keeps_mac_and_address_and_old_files_still_load(trust, tmp_path):
    peer = trust.find("host gamebox")
    trust.remember_location(peer.public_key, "52:54:00:12:34:56", "10.0.0.2")
    again = TrustStore.open(tmp_path).find("host gamebox")
    assert (again.mac, again.address) == ("52:54:00:12:34:56", "10.0.0.2")
    doc = json.loads((tmp_path / "trusted_peers.json").read_text())
    assert all("mac" not in p for p in doc["peers"] if p["name"] == "laptop")


def test_magic_packet_bytes():
    mac = parse_mac("52-54-00-AB-cd-EF")
    assert mac == bytes.fromhex("525400abcdef")
    assert parse_mac("525400abcdef") == mac == parse_mac("52:54:00:ab:cd:ef")
    packet = magic_packet(mac)
    assert len(packet) == 102 and packet[:6] == b"\xff" * 6
    assert all(packet[6 + 6 * i: 12 + 6 * i] == mac for i in range(16))
    assert format_mac(mac) == "52:54:00:ab:cd:ef"


@pytest.mark.parametrize("text", ["52:54:00:ab:cd", "52:54-00:ab:cd:ef", "zz:54:00:ab:cd:ef",
                                  "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff",
                                  "01:00:5e:00:00:fb", ""])
def test_bad_mac_addresses_are_one_sentence(text):
    with pytest.raises(NetworkError, match="MAC address|network card"):
        parse_mac(text)


def test_the_arp_table_fallback_reads_complete_entries_only(tmp_path):
    table = tmp_path / "arp"
    table.write_text(
        "IP address       HW type     Flags       HW address            Mask     Device\n"
        "10.0.0.2         0x1         0x2         52:54:00:ab:cd:ef     *        eth0\n"
        "10.0.0.3         0x1         0x0         00:00:00:00:00:00     *        eth0\n")
    assert _from_proc_arp("10.0.0.2", table) == "52:54:00:ab:cd:ef"
    assert _from_proc_arp("10.0.0.3", table) is None
    assert _from_proc_arp("10.0.0.4", table) is None


def test_doctor_counts_only_interfaces_that_are_up_and_multicast(tmp_path):
    from rootstream.discovery.probe import multicast_interfaces

    for name, flags in (("lo", 0x49), ("eth0", 0x1003), ("down0", 0x1002), ("nomc0", 0x3)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "flags").write_text(f"{flags:#06x}\n")
    assert multicast_interfaces(tmp_path) == ["eth0"]
    assert multicast_interfaces(tmp_path / "absent") == []
