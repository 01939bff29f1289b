"""The thin ioctl layer against real file descriptors.

Without a DRM card, what can still be real: ioctls reaching a device that is
not DRM (the kernel answers ENOTTY), and flip events read through select()
and read() from a FIFO fed the recorded event bytes.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from rootstream._native.drm_abi import DRM_EVENT_FLIP_COMPLETE
from rootstream._native.drm_device import DrmDevice, DrmIoctlError, dma_buf_sync
from rootstream._native.drm_parse import DrmError, DrmReplyError

EVENTS = (Path(__file__).parent / "data" / "drm" / "card-hdmi" / "events.bin").read_bytes()


@pytest.fixture
def fifo_device(tmp_path):
    path = tmp_path / "card0"
    os.mkfifo(path)
    seen: list[tuple[str, bytes]] = []
    # O_RDWR on a FIFO never blocks on Linux.
    device = DrmDevice(str(path), on_reply=lambda name, image: seen.append((name, image)))
    device.seen = seen
    writer = os.open(path, os.O_WRONLY)
    yield device, writer
    os.close(writer)
    device.close()


def test_flip_events_are_read_from_the_fd(fifo_device):
    device, writer = fifo_device
    os.write(writer, EVENTS)
    events = device.read_events(timeout=1.0)
    assert [e.type for e in events][0] == DRM_EVENT_FLIP_COMPLETE
    assert events[0].crtc_id == 51 and len(events) == 2
    assert device.seen == [("events", EVENTS)]  # what a recording of this card would keep


def test_read_events_times_out_empty(fifo_device):
    device, _ = fifo_device
    assert device.read_events(timeout=0.01) == []


def test_read_events_waits_for_a_late_flip(fifo_device):
    device, writer = fifo_device
    timer = threading.Timer(0.05, os.write, (writer, EVENTS[:32]))
    timer.start()
    try:
        events = device.read_events(timeout=5.0)
    finally:
        timer.join()
    assert [e.sequence for e in events] == [4242]


def test_garbage_on_the_fd_is_a_reply_error(fifo_device):
    device, writer = fifo_device
    os.write(writer, b"\x02\0\0\0\x03\0\0\0garbage!")
    with pytest.raises(DrmReplyError, match="bad event length"):
        device.read_events(timeout=1.0)


def test_ioctl_on_a_non_drm_device_names_the_request():
    with DrmDevice("/dev/null") as device:
        with pytest.raises(DrmIoctlError) as info:
            device.version()
        assert info.value.errno == errno.ENOTTY
        assert str(info.value) == "DRM_IOCTL_VERSION failed: Inappropriate ioctl for device"
        with pytest.raises(DrmIoctlError, match="^DRM_IOCTL_MODE_GETFB2 failed"):
            device.getfb2(84)
    assert device.fd == -1
    with pytest.raises(DrmError, match="is closed"):
        device.resources()


def test_dma_buf_sync_on_a_non_dmabuf():
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        with pytest.raises(DrmIoctlError, match="^DMA_BUF_IOCTL_SYNC failed"):
            dma_buf_sync(fd, 0)
    finally:
        os.close(fd)


def test_open_failure_keeps_errno(tmp_path):
    with pytest.raises(DrmIoctlError) as info:
        DrmDevice(str(tmp_path / "card9"))
    assert info.value.errno == errno.ENOENT
    assert str(info.value) == f"cannot open {tmp_path}/card9: No such file or directory"
