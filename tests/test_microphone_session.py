"""The microphone through a real session: `rootstream host` (a process) and a Client with mic.

Both use the audio tests' private PulseAudio server ($PULSE_SERVER).  The
client's default source is a fed null sink's monitor playing a 997 Hz tone;
while the session runs, "rootstream microphone" exists on the server and
carries the tone; after the client leaves, it is gone.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from session_helpers import HostProcess
from test_audio_pulse import TONE_HZ, pulse_server  # noqa: F401 - the fixture
from test_microphone_pulse import FEED, Tone, pactl, record

from rootstream.audio.mic_source import SOURCE, source_names
from rootstream.client import Client, ClientOptions
from rootstream.testing.audio_analysis import dominant_hz

pytestmark = pytest.mark.slow


def test_connect_mic_reaches_the_hosts_virtual_source_and_it_goes_after(
        pulse_server, tmp_path, udp_port, monkeypatch):  # noqa: F811
    feed = pactl(pulse_server, "load-module", "module-null-sink", f"sink_name={FEED}",
                 "rate=48000", "channels=2").strip()
    pactl(pulse_server, "set-default-source", f"{FEED}.monitor")
    monkeypatch.setenv("PULSE_SERVER", pulse_server)
    host = HostProcess(udp_port, "--insecure", "--source", "test", "--size", "640x360",
                       "--fps", "10", "--bitrate", "1", "--input", "none", "--audio", "none",
                       env=dict(os.environ), log_dir=tmp_path)
    tone = Tone(pulse_server, seconds=6)
    try:
        host.wait_for("listening on")
        tone.start()
        client = Client(ClientOptions(host=("127.0.0.1", udp_port), present="null",
                                      insecure=True, input=False, audio=False, mic=True,
                                      seconds=60, stats_interval=60), log=lambda line: None)
        runner = threading.Thread(target=client.run, daemon=True)
        runner.start()
        try:
            host.wait_for("'rootstream microphone'")
            assert SOURCE in source_names(pulse_server)
            time.sleep(1.0)
            heard = record(pulse_server, 1.5)
            assert dominant_hz(heard[4800:]) == pytest.approx(TONE_HZ, rel=0.01)
        finally:
            client.stop()
            runner.join(10)
        deadline = time.monotonic() + 5
        while SOURCE in source_names(pulse_server) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert SOURCE not in source_names(pulse_server), host.log()
    finally:
        host.stop()
        tone.join(10)
        pactl(pulse_server, "unload-module", feed)
