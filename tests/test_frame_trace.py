"""``--frame-trace`` on both ends of a real session: every frame's stamps, joinable by frame id.

A host streaming its test pattern (whose marker carries a frame number and
the capture's milliseconds) and a client on the same machine
(``--same-clock``): each stamp must come in the order the stages run, and
the client's trace must name frames the host's trace has.
"""

from __future__ import annotations

import json
import subprocess

from session_helpers import HostProcess, rootstream_command


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_host_and_client_trace_every_stage_in_order(tmp_path, udp_port):
    host_trace, client_trace = tmp_path / "host.jsonl", tmp_path / "client.jsonl"
    host = HostProcess(udp_port, "--source", "test", "--size", "640x360", "--fps", "30",
                       "--frame-trace", str(host_trace), log_dir=tmp_path)
    try:
        host.wait_for("listening on")
        client = subprocess.run(
            rootstream_command("connect", f"127.0.0.1:{udp_port}", "--present", "null",
                               "--frames", "20", "--same-clock", "--no-audio", "--no-input",
                               "--frame-trace", str(client_trace)),
            capture_output=True, text=True, timeout=60)
        assert client.returncode == 0, client.stderr
    finally:
        host.stop()
    sent = {line["frame_id"]: line for line in _lines(host_trace)}
    shown = _lines(client_trace)
    assert len(sent) >= 20
    # The test pattern's marker changes every frame: one client line per frame shown.
    assert len(shown) >= 15
    assert len({line["marker"] for line in shown}) == len(shown)
    for line in sent.values():
        assert (line["captured_ns"] <= line["converted_ns"] <= line["taken_ns"]
                <= line["encoded_ns"] <= line["sent_ns"]), line
    for line in shown:
        assert (line["received_ns"] <= line["assembled_ns"] <= line["decoded_ns"]
                <= line["presented_ns"]), line
        host_line = sent[line["frame_id"]]
        # One clock: the header's capture ms is the host's capture ns, and the frame
        # is complete on the client after the host encoded it (not always after
        # ``sent``: that is stamped once the parity datagrams are out too).
        assert line["captured_ms"] == host_line["captured_ns"] // 1_000_000
        assert line["host_us"] == (host_line["encoded_ns"] - host_line["captured_ns"]) // 1000
        assert line["assembled_ns"] >= host_line["encoded_ns"]
        assert line["painted_ms"] <= line["presented_ns"] // 1_000_000
