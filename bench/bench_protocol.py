"""Protocol layer throughput: fragment and reassemble whole frames.

Target (issue 2): each direction at least 2 Gbit/s of frame data on one
core, so the protocol layer never limits a gigabit LAN.  The named baseline,
measured in the same run, is the least any packetiser must do: slice the
frame into 1364-byte chunks and join them back (``bytes`` slicing and
``b"".join``).  Both directions include the ROOT header and its CRC.
"""

from __future__ import annotations

import os

import pytest

from rootstream.protocol import (
    PacketType,
    Reassembler,
    VideoFragmenter,
    decode_datagram,
    encode_datagram,
)

SIZES = {"p-frame-20k": 20_000, "idr-400k": 400_000}
CHUNK = 1364


def _gbits(benchmark, size: int) -> None:
    median = benchmark.stats.stats.median
    benchmark.extra_info["Gbit/s (median)"] = round(size * 8 / median / 1e9, 2)


def _send(fragmenter: VideoFragmenter, data: bytes) -> list[bytes]:
    return [encode_datagram(PacketType.VIDEO, i, 0, p)
            for i, p in enumerate(fragmenter.fragment(data, keyframe=True))]


@pytest.mark.parametrize("name", SIZES)
def test_fragment(benchmark, name):
    data = os.urandom(SIZES[name])
    fragmenter = VideoFragmenter()
    benchmark.group = f"protocol-send-{name}"
    benchmark(_send, fragmenter, data)
    _gbits(benchmark, len(data))


@pytest.mark.parametrize("name", SIZES)
def test_fragment_with_fec(benchmark, name):
    data = os.urandom(SIZES[name])
    fragmenter = VideoFragmenter(fec_share=0.2)
    benchmark.group = f"protocol-send-{name}"
    benchmark(_send, fragmenter, data)
    _gbits(benchmark, len(data))


@pytest.mark.parametrize("name", SIZES)
def test_reassemble(benchmark, name):
    data = os.urandom(SIZES[name])
    fragmenter = VideoFragmenter()
    frames = [_send(fragmenter, data) for _ in range(2000)]
    reassembler = Reassembler()
    it = iter(frames)

    def receive():
        out = None
        for datagram in next(it):
            header, payload = decode_datagram(datagram)
            out = reassembler.push(payload, header.timestamp_ms, 0) or out
        return out

    benchmark.group = f"protocol-receive-{name}"
    benchmark.pedantic(receive, rounds=min(len(frames), 1500), iterations=1)
    assert reassembler.stats.frames_completed > 0
    _gbits(benchmark, len(data))


@pytest.mark.parametrize("name", SIZES)
def test_baseline_slice(benchmark, name):
    data = os.urandom(SIZES[name])
    benchmark.group = f"protocol-send-{name}"
    benchmark(lambda: [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)])
    _gbits(benchmark, len(data))


@pytest.mark.parametrize("name", SIZES)
def test_baseline_join(benchmark, name):
    data = os.urandom(SIZES[name])
    chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]
    benchmark.group = f"protocol-receive-{name}"
    benchmark(b"".join, chunks)
    _gbits(benchmark, len(data))


# -- the transport's per-datagram path: framing, sealing, checksum, socket ----------------
#
# What the host's "send" stage and the client's "assemble" stage pay per
# datagram besides fragmenting: UdpTransport.send_many (header, seal, CRC,
# sendto) and UdpTransport.receive (recvfrom, CRC check, parse, open) over real
# loopback sockets.  The named baseline, in the same run, is the same path
# unsealed: sealing's cost is the ratio between the two.  PyNaCl's AEAD call
# (what Sealer used before cryptography's OpenSSL one) is measured against
# Sealer.seal for the record.

TRANSPORT_CASES = {"datagram": 1, "p-frame-20k": 20_000}


def _secured_pair(sealed: bool):
    from rootstream.crypto.handshake import SessionKeys
    from rootstream.net.udp import UdpTransport

    host, client = UdpTransport(("127.0.0.1", 0)), UdpTransport(("127.0.0.1", 0))
    if sealed:
        to_client, to_host = os.urandom(32), os.urandom(32)
        session = os.urandom(32)
        host.secure(client.address,
                    SessionKeys(to_client, to_host, session, os.urandom(32), False))
        client.secure(host.address,
                      SessionKeys(to_host, to_client, session, os.urandom(32), True))
    return host, client


def _frame_payloads(name: str, max_payload: int) -> list[bytes]:
    if TRANSPORT_CASES[name] == 1:
        return [os.urandom(max_payload)]
    fragmenter = VideoFragmenter(max_payload=max_payload)
    return fragmenter.fragment(os.urandom(TRANSPORT_CASES[name]), keyframe=False)


@pytest.mark.parametrize("sealed", [False, True], ids=["unsealed-baseline", "sealed"])
@pytest.mark.parametrize("name", TRANSPORT_CASES)
def test_transport_send(benchmark, bench_summary, name, sealed):
    host, client = _secured_pair(sealed)
    payloads = _frame_payloads(name, host.max_payload)
    try:
        benchmark.group = f"transport-send-{name}"
        benchmark(host.send_many, PacketType.VIDEO, payloads, client.address, 5)
        bench_summary.record(benchmark, "send", name, "sealed" if sealed else "unsealed")
    finally:
        host.close()
        client.close()


@pytest.mark.parametrize("sealed", [False, True], ids=["unsealed-baseline", "sealed"])
@pytest.mark.parametrize("name", TRANSPORT_CASES)
def test_transport_receive(benchmark, bench_summary, name, sealed):
    host, client = _secured_pair(sealed)
    payloads = _frame_payloads(name, host.max_payload)
    count = len(payloads)

    def queue_one_frame():  # not timed: the datagrams wait in the client's socket
        host.send_many(PacketType.VIDEO, payloads, client.address, 5)

    def receive_frame():
        for _ in range(count):
            got = client.receive(0)
        return got

    try:
        benchmark.group = f"transport-receive-{name}"
        got = benchmark.pedantic(receive_frame, setup=queue_one_frame, rounds=2000)
        assert got is not None and got.sealed == sealed
        assert client.counters.rejected == {} and client.counters.malformed == 0
        bench_summary.record(benchmark, "receive", name, "sealed" if sealed else "unsealed")
    finally:
        host.close()
        client.close()


@pytest.mark.parametrize("how", ["pynacl-call", "sealer"])
def test_seal_one_datagram(benchmark, bench_summary, how):
    import nacl.bindings

    from rootstream.crypto.seal import SEAL_OVERHEAD, Sealer
    from rootstream.protocol import MAX_PAYLOAD

    key, payload = os.urandom(32), os.urandom(MAX_PAYLOAD - SEAL_OVERHEAD)
    header = bytes.fromhex("524f4f5401010007000003e805680000")
    benchmark.group = "seal-1360B"
    if how == "sealer":
        benchmark(Sealer(key).seal, header, payload)
    else:
        benchmark(nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt, payload, header,
                  bytes(12), key)
    bench_summary.record(benchmark, "seal", "datagram", how)


def summary_lines(results):
    yield ""
    yield "per-datagram path (median / p99 in us; ratio of medians to the baseline):"
    for (stage, name, how), (median, p99) in sorted(results.items()):
        baseline = {"seal": "pynacl-call"}.get(stage, "unsealed")
        base = results.get((stage, name, baseline))
        ratio = f"  x{median / base[0]:.2f} vs {baseline}" if base and how != baseline else ""
        yield f"  {stage:8s} {name:12s} {how:12s} {median * 1e6:8.1f} / {p99 * 1e6:8.1f}{ratio}"
