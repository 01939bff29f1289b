"""The host's virtual microphone: "rootstream microphone", for one session.

Host applications pick a *source*; what the client's microphone sends must
become one.  PulseAudio (and PipeWire's pulse server) make that from two
modules, loaded with `pactl` when a session with a microphone starts and
unloaded when it ends:

- module-null-sink ``rootstream_mic_sink``: the host plays the client's
  voice into it (nothing hears a null sink directly);
- module-remap-source ``rootstream_mic`` ("rootstream microphone") from that
  sink's monitor: a plain capture device, not a "Monitor of ...", so
  applications list it among microphones.

`pactl` talks the native protocol to whichever server $PULSE_SERVER (or
``server``) names, so no new library is needed.
"""

from __future__ import annotations

import shutil
import subprocess

from rootstream.backends import BackendProbe
from rootstream.errors import AudioError

SINK = "rootstream_mic_sink"
SOURCE = "rootstream_mic"
DESCRIPTION = "rootstream microphone"
PACTL_TIMEOUT_S = 5


def _pactl(server: str | None, *args: str) -> str:
    exe = shutil.which("pactl")
    if exe is None:
        raise AudioError("pactl is not installed",
                         hint="install pulseaudio-utils (it works with PipeWire's pulse too)")
    command = [exe, *(["--server", server] if server else []), *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PACTL_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise AudioError("the sound server did not answer pactl", details=[str(exc)]) from exc
    if done.returncode != 0:
        raise AudioError(f"pactl {args[0]} failed",
                         hint="is PulseAudio or pipewire-pulse running for this user?",
                         details=[done.stderr.strip()])
    return done.stdout


class VirtualMicrophone:
    """Load the sink and the remapped source; ``close()`` unloads both."""

    def __init__(self, server: str | None = None) -> None:
        self.server = server
        self._modules: list[str] = []
        try:
            self._load("module-null-sink", f"sink_name={SINK}", "rate=48000", "channels=2",
                       "sink_properties=device.description=rootstream-microphone-sink")
            self._load("module-remap-source", f"master={SINK}.monitor",
                       f"source_name={SOURCE}",
                       f"source_properties='device.description=\"{DESCRIPTION}\"'")
        except BaseException:
            self.close()
            raise

    def _load(self, module: str, *args: str) -> None:
        self._modules.append(_pactl(self.server, "load-module", module, *args).strip())

    def close(self) -> None:
        """Unload what was loaded, newest first; a server already gone is no error."""
        while self._modules:
            module = self._modules.pop()
            try:
                _pactl(self.server, "unload-module", module)
            except AudioError:
                pass


def source_names(server: str | None = None) -> list[str]:
    """The names of the server's sources (`pactl list short sources`)."""
    return [line.split("\t")[1] for line in _pactl(server, "list", "short", "sources").splitlines()
            if "\t" in line]


def probe_microphone(server: str | None = None) -> list[BackendProbe]:
    """`rootstream doctor`: can this host make a virtual microphone, this client capture one?"""
    try:
        names = source_names(server)
    except AudioError as exc:
        why = " ".join(" ".join(exc.details).split())  # pactl's lines, on one line
        reason = f"{exc}: {why}" + (f" ({exc.hint})" if exc.hint else "")
        return [BackendProbe("host", False, reason), BackendProbe("client", False, reason)]
    microphones = [n for n in names if not n.endswith(".monitor") and n != SOURCE]
    return [BackendProbe("host", True, f"pactl reaches the sound server: '{DESCRIPTION}' "
                                       "is made for each session with a microphone"),
            BackendProbe("client", bool(microphones),
                         f"`connect --mic` sends {microphones[0]}" if microphones
                         else "the sound server has no microphone (only monitors)")]
