"""The GStreamer baseline: the same screen to the same window, at its strongest.

The issue-3 pipeline (``gstreamer-issue3`` in the tables), sender on display A::

    ximagesrc ! video/x-raw,framerate=60/1 ! videoconvert
      ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=<kbit/s>
      ! rtph264pay config-interval=-1 ! udpsink sync=false

receiver on display B::

    udpsrc caps=application/x-rtp,... ! rtpjitterbuffer latency=0 ! rtph264depay
      ! avdec_h264 ! videoconvert ! ximagesink sync=false

What that adds to GStreamer's defaults, and why each is fair to it:
``framerate=60/1`` (ximagesrc otherwise paces itself at its default rate),
``bitrate`` equal to rootstream's (x264enc's default is 2 Mbit/s, which would
make its frames smaller and faster than ours), ``config-interval=-1`` (the
parameter sets with every keyframe, as rootstream's encoder does, so a
receiver that starts late still decodes), caps on ``udpsrc`` (RTP carries no
description of itself), and ``sync=false`` on ``udpsink`` (a live source's
buffers would otherwise wait for the pipeline's reported latency before
leaving).

The baseline the tables call ``gstreamer`` adds STRONGEST, chosen by
measurement (bench_glass.py --sweep, then the combinations; 720p60, game and
motion scenes, two rounds each, figures in docs/BENCHMARKS.md). Each of
OPTIONS, alone on top of issue 3's pipeline: ``use-damage=false`` was the one
clear gain (p50 20.0 -> 15.2 ms in the game scene, 23.2 -> 18.0 in motion, and
the sender's CPU 0.54 -> 0.34 s/s: with XDAMAGE ximagesrc fetches each damaged
rectangle with XGetSubImage, the pixels through the socket, and without it the
whole screen with one XShmGetImage); ``show-pointer=false`` a small gain;
``sliced-threads=true``, ``key-int-max``, a 60000-byte ``mtu``, sink
``qos=false max-lateness=-1`` and the decoder's ``thread-type=slice`` were no
better, or worse, alone. Of the combinations, no-damage + no-pointer had the
lowest p50 summed over both scenes (14.2 + 19.2 ms); adding sliced-threads was
within 0.8 ms of it.

Each side is a ``gst-launch-1.0`` process, so /proc gives its CPU and memory
just as for rootstream's two processes.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from conftest import Spawned
from two_machines import taskset

PACKAGES = ("gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
            "gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-x")
ELEMENTS = ("ximagesrc", "videoconvert", "x264enc", "rtph264pay", "udpsink", "udpsrc",
            "rtpjitterbuffer", "rtph264depay", "avdec_h264", "ximagesink")
RTP_CAPS = "application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96"


def missing() -> str:
    """Why the baseline cannot run here ("" when it can): the tool or an element is absent."""
    if shutil.which("gst-launch-1.0") is None or shutil.which("gst-inspect-1.0") is None:
        return f"gst-launch-1.0 missing (apt-get install {PACKAGES})"
    absent = [name for name in ELEMENTS
              if subprocess.run(["gst-inspect-1.0", name], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, timeout=30).returncode != 0]
    if absent:
        return f"GStreamer elements missing: {', '.join(absent)} (apt-get install {PACKAGES})"
    return ""


# Each option a GStreamer user sets for low latency, as extra properties per element
# (name -> {element: [property, ...]}).  bench_glass.py measures each on top of the
# issue-3 pipeline in the same rounds; STRONGEST is the combination it keeps.
OPTIONS = {
    # ximagesrc: XDAMAGE on (its default) fetches each damaged rectangle with
    # XGetSubImage (through the socket); off, the screen with one XShmGetImage.
    "no-damage": {"ximagesrc": ["use-damage=false"]},
    # the pointer is composited into every frame unless told not to.
    "no-pointer": {"ximagesrc": ["show-pointer=false"]},
    # x264enc's own sliced-threads property (default false) is applied after
    # tune=zerolatency and so switches zerolatency's sliced threads back to
    # frame threads, which hold frames; true restores one slice per thread.
    "sliced": {"x264enc": ["sliced-threads=true"]},
    # no periodic keyframe (x264's default is one every 250 frames) to spike p99;
    # rootstream's encoder keeps an endless GOP too.
    "keyint": {"x264enc": ["key-int-max=100000"]},
    # a frame in a few large datagrams instead of hundreds of 1400-byte ones
    # (loopback carries 64 KiB); the receiver's buffers must fit them.
    "mtu": {"rtph264pay": ["mtu=60000"], "udpsrc": ["mtu=65536"]},
    # the sink never drops a late frame, nor tells the encoder to drop.
    "no-qos": {"ximagesink": ["qos=false", "max-lateness=-1"]},
    # the decoder's frame threads hold a frame each; slice threads do not.
    "dec-slice": {"avdec_h264": ["thread-type=slice"]},
}
# The fastest combination in bench_glass's option sweep (docs/BENCHMARKS.md has
# the figures); "gstreamer" in the tables is this, "gstreamer-issue3" has none.
STRONGEST: tuple[str, ...] = ("no-damage", "no-pointer")


def _element(name: str, props: list[str], options: tuple[str, ...]) -> list[str]:
    extra = [prop for option in options for prop in OPTIONS[option].get(name, [])]
    return [name, *props, *extra, "!"]


def sender_pipeline(display: str, port: int, fps: int, bitrate_kbps: int,
                    options: tuple[str, ...] = ()) -> list[str]:
    return [*_element("ximagesrc", [f"display-name={display}"], options),
            f"video/x-raw,framerate={fps}/1", "!",
            "videoconvert", "!",
            *_element("x264enc", ["tune=zerolatency", "speed-preset=ultrafast",
                                  f"bitrate={bitrate_kbps}"], options),
            *_element("rtph264pay", ["config-interval=-1"], options),
            "udpsink", "host=127.0.0.1", f"port={port}", "sync=false"]


def receiver_pipeline(display: str, port: int, options: tuple[str, ...] = ()) -> list[str]:
    return [*_element("udpsrc", ["address=127.0.0.1", f"port={port}", f"caps={RTP_CAPS}"],
                      options),
            "rtpjitterbuffer", "latency=0", "!",
            "rtph264depay", "!",
            *_element("avdec_h264", [], options),
            "videoconvert", "!",
            *_element("ximagesink", [f"display={display}", "sync=false"], options)[:-1]]


class GStreamerStream:
    """Receiver on ``client_display`` first (so it sees the first keyframe), then sender."""

    def __init__(self, host_display: str, client_display: str, port: int, log_dir, *,
                 fps: int = 60, bitrate_kbps: int = 10_000, options: tuple[str, ...] = (),
                 host_cpu: int | None = None, client_cpu: int | None = None):
        env = dict(os.environ, GST_DEBUG="1")  # errors only, into the log
        launch = ["gst-launch-1.0", "--no-position"]
        # host_cpu / client_cpu: bench/two_machines.py's model, each side on one core.
        self.receiver = Spawned("gst-receiver", taskset(
                                client_cpu, launch + receiver_pipeline(client_display, port,
                                                                       options)),
                                log_dir, env=env)
        try:
            self.receiver.wait_for("Setting pipeline to PLAYING", timeout=30)
            self.sender = Spawned("gst-sender", taskset(
                                  host_cpu, launch + sender_pipeline(host_display, port, fps,
                                                                     bitrate_kbps, options)),
                                  log_dir, env=env)
            self.sender.wait_for("Setting pipeline to PLAYING", timeout=30)
        except BaseException:
            self.stop()
            raise

    def pids(self) -> dict[str, int]:
        return {"gst-sender": self.sender.pid, "gst-receiver": self.receiver.pid}

    def check_alive(self) -> None:
        for side in (getattr(self, "sender", None), self.receiver):
            if side is not None and side.proc.poll() is not None:
                raise RuntimeError(f"{side.name} exited ({side.proc.returncode}):\n{side.log()}")

    def stop(self) -> None:
        sender = getattr(self, "sender", None)
        if sender is not None:
            sender.stop()
        self.receiver.stop()
