"""Opus through PyAV's real libopus, and the host-side sender built on it."""

from __future__ import annotations

import numpy as np
import pytest

from rootstream.audio.capture import open_audio_capture
from rootstream.audio.chunk import AudioChunk
from rootstream.audio.opus import OpusDecoder, OpusEncoder
from rootstream.audio.sender import AudioSender
from rootstream.errors import AudioError
from rootstream.protocol.audio import AudioPayload
from rootstream.testing.audio_analysis import dominant_hz, level_dbfs, longest_quiet_ms


def tone(hz: float, samples: int, start: int = 0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(start, start + samples) / 48000
    mono = np.round(amplitude * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)
    return np.repeat(mono[:, None], 2, axis=1)


def encode_tone(encoder: OpusEncoder, hz: float, frames: int) -> list[bytes]:
    n = encoder.frame_samples
    return [encoder.encode(tone(hz, n, i * n)) for i in range(frames)]


def test_encoder_is_cbr_low_delay_ten_ms():
    encoder = OpusEncoder()
    packets = encode_tone(encoder, 440, 20)
    assert encoder.frame_samples == 480
    assert {len(p) for p in packets} == {160}  # 128 kbit/s * 10 ms, constant
    assert encoder.delay_samples == 120  # CELT lookahead: restricted low delay
    assert all(p[0] >> 3 == 30 for p in packets)  # TOC config 30: CELT fullband 10 ms


@pytest.mark.parametrize("frame_ms, samples", [(5, 240), (10, 480), (20, 960)])
def test_frame_durations(frame_ms, samples):
    encoder = OpusEncoder(frame_ms=frame_ms)
    decoder = OpusDecoder()
    (packet,) = encode_tone(encoder, 440, 1)
    assert decoder.decode(packet, samples).shape == (samples, 2)


def test_unsupported_frame_duration_and_shape_are_audio_errors():
    with pytest.raises(AudioError, match="unsupported Opus frame duration"):
        OpusEncoder(frame_ms=7)
    with pytest.raises(AudioError, match="wrong shape"):
        OpusEncoder().encode(np.zeros((100, 2), np.int16))


def test_decoded_tone_keeps_frequency_and_level():
    encoder, decoder = OpusEncoder(), OpusDecoder()
    pcm = np.concatenate([decoder.decode(p, 480) for p in encode_tone(encoder, 1000, 100)])
    steady = pcm[4800:]
    assert dominant_hz(steady) == pytest.approx(1000, abs=2)
    assert level_dbfs(steady) == pytest.approx(level_dbfs(tone(1000, 48000)), abs=1.0)


def test_a_toc_only_packet_is_concealment_that_continues_the_tone():
    encoder, decoder = OpusEncoder(), OpusDecoder()
    packets = encode_tone(encoder, 440, 60)
    out = []
    for i, packet in enumerate(packets):
        out.append(decoder.conceal(480) if i in (30, 45, 46) else decoder.decode(packet, 480))
    pcm = np.concatenate(out)
    concealed = pcm[30 * 480:31 * 480]
    assert level_dbfs(concealed) > level_dbfs(tone(440, 480)) - 6  # not silence
    assert longest_quiet_ms(pcm[2400:]) == 0
    assert dominant_hz(pcm[2400:]) == pytest.approx(440, abs=3)


def test_concealment_of_odd_lengths_returns_exactly_that_many_samples():
    decoder = OpusDecoder()
    decoder.decode(OpusEncoder().encode(tone(440, 480)), 480)
    for samples in (120, 240, 300, 480, 960, 1000):
        assert decoder.conceal(samples).shape == (samples, 2)


def test_garbage_or_lying_frames_keep_the_promised_length():
    encoder, decoder = OpusEncoder(), OpusDecoder()
    good = encoder.encode(tone(440, 480))
    assert decoder.decode(good, 480).shape == (480, 2)
    assert decoder.decode(good, 960).shape == (960, 2)  # peer claimed more: padded
    assert decoder.decode(good, 240).shape == (240, 2)  # peer claimed less: cut
    for garbage in (b"\xff" * 7, bytes(range(200)), b"\x03\xff\xff"):
        assert decoder.decode(garbage, 480).shape == (480, 2)
    assert decoder.errors >= 2


def test_sender_frames_any_chunking_and_stamps_what_the_decoder_outputs():
    capture = open_audio_capture("test", realtime=False, chunk_samples=300)
    sender = AudioSender()
    payloads = [AudioPayload.parse(p) for _ in range(16) for p in sender.push(capture.read())]
    assert len(payloads) == 16 * 300 // 480
    assert [p.position for p in payloads] == [i * 480 for i in range(len(payloads))]
    lookahead_ns = 120 * 1_000_000_000 // 48000
    for i, p in enumerate(payloads):
        assert p.captured_ns == capture.captured_ns_at(i * 480) - lookahead_ns
    # Each payload repeats the previous frame, byte for byte.
    assert payloads[0].redundant == b""
    for before, after in zip(payloads[:-1], payloads[1:], strict=True):
        assert after.redundant == before.primary and after.redundant_samples == 480
        assert after.redundant_position == before.position


def test_sender_stamp_is_exact_when_decoded():
    """Decode the sender's output and find the test signal's marks where the stamps say."""
    from rootstream.audio.tone import find_marks

    capture = open_audio_capture("test", realtime=False)
    sender, decoder = AudioSender(), OpusDecoder()
    pcm, stamps = [], []
    for _ in range(60):
        for data in sender.push(capture.read()):
            payload = AudioPayload.parse(data)
            pcm.append(decoder.decode(payload.primary, payload.samples))
            stamps.append(payload.captured_ns)
    out = np.concatenate(pcm)
    for onset in find_marks(out):
        frame, offset = divmod(onset, 480)
        captured = stamps[int(frame)] + offset * 1e9 / 48000
        mark = round((captured - capture.start_ns) / 100e6)
        assert captured - capture.captured_ns_at(mark * 4800) == pytest.approx(0, abs=0.1e6)


def test_sender_without_redundancy_and_with_oversized_frames():
    sender = AudioSender(redundancy=False)
    chunk = AudioChunk(tone(440, 960), 10**9, 0)
    assert all(AudioPayload.parse(p).redundant == b"" for p in sender.push(chunk))
    big = AudioSender(OpusEncoder(bitrate=510_000, frame_ms=20))
    payloads = [AudioPayload.parse(p) for p in big.push(AudioChunk(tone(440, 960 * 3), 10**9, 0))]
    # 510 kbit/s * 20 ms = 1275 bytes: a second copy cannot fit the datagram.
    assert all(len(p.primary) > 1000 for p in payloads)
    assert all(p.redundant == b"" for p in payloads)
