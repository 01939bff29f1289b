"""rootstream.audio: capture, Opus, jitter buffer, playback and lip sync.

Host: ``open_audio_capture`` -> ``AudioSender`` (Opus frames in AUDIO
payloads).  Client: ``JitterBuffer`` (inside ``open_audio_playback``) with
``AudioSync`` keeping the sound within ±20 ms of the picture.
"""
