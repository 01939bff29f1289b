"""Cost of sealing and opening datagram payloads, against a plain copy.

Target (issue "Encryption, pairing and access control"): at 1080p60 and
20 Mbit/s (about 1800 datagrams/s of 1384-byte payloads) sealing on the host,
and opening on the client, each cost under 15 % of one core.

The named baseline, measured in the same run over the same bytes, is what an
unencrypted sender and receiver do anyway per datagram: join header and
payload into one ``bytes`` (send) and slice the payload back out (receive).

Cases: one datagram whose sealed payload is the 1384-byte maximum (1360 bytes
of plaintext + 24 bytes of counter and tag), and a 20 KB P-frame as the 15
datagrams the packetiser makes of it.  The handshake and pairing are one-off
costs per connection, measured for the record.

Run: ``pytest bench/bench_crypto.py --benchmark-only``; the summary at the end
lists median and p99, the ratio to the copy baseline, packets/s on one core
and the share of one core at 1800 datagrams/s.
"""

from __future__ import annotations

import os

import pytest

from rootstream.crypto import (
    SEAL_OVERHEAD,
    HandshakeInitiator,
    HandshakeResponder,
    Identity,
    Opener,
    PairingClient,
    PairingHost,
    Sealer,
    TrustedPeer,
)

HEADER = bytes.fromhex("524f4f5401010007000003e80568abcd")
MAX_PAYLOAD = 1384
PLAINTEXT = MAX_PAYLOAD - SEAL_OVERHEAD
DATAGRAMS_PER_SECOND = 1800  # 20 Mbit/s at 1080p60 in 1384-byte payloads
TARGET_SHARE = 0.15
KEY = os.urandom(32)
CASES = {
    "datagram-1384": [PLAINTEXT],
    "p-frame-20k-as-15": [PLAINTEXT] * 14 + [20_000 - 14 * PLAINTEXT],
}

_results: dict[tuple[str, str], tuple[float, float]] = {}


def _payloads(case: str) -> list[bytes]:
    return [os.urandom(n) for n in CASES[case]]


def copy_send(payloads):
    return [HEADER + p for p in payloads]


def copy_receive(datagrams):
    return [d[16:] for d in datagrams]


def seal_send(sealer, payloads):
    return [HEADER + sealer.seal(HEADER, p) for p in payloads]


def open_receive(datagrams):
    # A fresh opener per round, as each round replays the same counters.
    opener = Opener(KEY)
    return [opener.open(d[:16], d[16:]) for d in datagrams]


def record(benchmark, case: str, op: str) -> None:
    timings = sorted(benchmark.stats.stats.data)
    median = benchmark.stats.stats.median
    p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
    _results[(case, op)] = (median, p99)
    benchmark.extra_info["median_us"] = round(median * 1e6, 2)
    benchmark.extra_info["p99_us"] = round(p99 * 1e6, 2)


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not _results:
        return
    # Module teardown runs under output capture: lift it so the summary shows
    # without -s.
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        _write_summary(reporter)


def _write_summary(reporter) -> None:
    reporter.write_line("")
    reporter.write_line(f"Sealing cost (ChaCha20-Poly1305-IETF, {PLAINTEXT} B plaintext per "
                        f"datagram; baseline = plain copy)")
    for case, sizes in CASES.items():
        for op, base in (("seal", "copy-send"), ("open", "copy-receive")):
            sealed, copied = _results.get((case, op)), _results.get((case, base))
            if sealed is None or copied is None:
                continue
            per_packet = sealed[0] / len(sizes)
            share = per_packet * DATAGRAMS_PER_SECOND
            verdict = "ok" if share < TARGET_SHARE else "OVER TARGET"
            reporter.write_line(
                f"  {case:18} {op}: median {sealed[0] * 1e6:7.1f} us p99 {sealed[1] * 1e6:7.1f} us"
                f" | {base} median {copied[0] * 1e6:6.2f} us | x{sealed[0] / copied[0]:5.1f}"
                f" | {1 / per_packet:8.0f} pkt/s/core | {share * 100:4.1f} % of a core at"
                f" {DATAGRAMS_PER_SECOND}/s ({verdict}, target < {TARGET_SHARE:.0%})"
            )
    for op in ("handshake", "pairing"):
        if ("once", op) in _results:
            median, p99 = _results[("once", op)]
            reporter.write_line(f"  {op:9} (both sides, once per connection/pairing): median"
                                f" {median * 1e3:6.2f} ms p99 {p99 * 1e3:6.2f} ms")


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("op", ["seal", "copy-send"])
def test_send(benchmark, case, op):
    payloads = _payloads(case)
    benchmark.group = f"crypto-send-{case}"
    if op == "seal":
        sealer = Sealer(KEY)
        datagrams = benchmark(seal_send, sealer, payloads)
        assert all(len(d) <= 16 + MAX_PAYLOAD for d in datagrams)
    else:
        benchmark(copy_send, payloads)
    record(benchmark, case, op)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("op", ["open", "copy-receive"])
def test_receive(benchmark, case, op):
    payloads = _payloads(case)
    benchmark.group = f"crypto-receive-{case}"
    if op == "open":
        datagrams = seal_send(Sealer(KEY), payloads)
        assert benchmark(open_receive, datagrams) == payloads
    else:
        assert benchmark(copy_receive, copy_send(payloads)) == payloads
    record(benchmark, case, op)


def test_handshake(benchmark):
    host, client = Identity.generate(), Identity.generate()
    peer = TrustedPeer("client", client.public_key, 0.0)

    def run():
        initiator = HandshakeInitiator(client, host.public_key)
        responder = HandshakeResponder(host, lambda key: peer)
        initiator.receive(responder.receive(initiator.start()))
        return initiator.keys

    benchmark.group = "crypto-once"
    assert benchmark(run) is not None
    record(benchmark, "once", "handshake")


def test_pairing(benchmark):
    host_id, client_id = Identity.generate(), Identity.generate()

    def run():
        host = PairingHost(host_id, "123456", 0.0, name="host")
        client = PairingClient(client_id, "123456", name="client")
        client.receive(host.receive(client.receive(host.receive(client.start(), 0.0)), 0.0))
        return client.result

    benchmark.group = "crypto-once"
    assert benchmark(run) is not None
    record(benchmark, "once", "pairing")
