"""PipeWireStream against a real PipeWire daemon and wireplumber, with a producer node
of known pixels, pts and cursor metadata (tests/pipewire_helpers.py).

Every part is started here; one that fails to start fails the test.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import numpy as np
import pytest
from pipewire_helpers import PipeWireSession, ProducerProcess, VideoProducer

from rootstream.capture.pipewire_stream import PipeWireStream
from rootstream.errors import CaptureError

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def session():
    session = PipeWireSession().start()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_RUNTIME_DIR", str(session.runtime))
        patch.setenv("PIPEWIRE_RUNTIME_DIR", str(session.runtime))
        patch.delenv("PIPEWIRE_REMOTE", raising=False)
        yield session
    session.stop()


@pytest.fixture
def producer(session):
    made = []

    def make(*args, **kwargs) -> VideoProducer:
        made.append(VideoProducer(*args, **kwargs))
        return made[-1]

    yield make
    for p in made:
        p.close()


def pattern(height: int, stride: int, seed: int = 0) -> np.ndarray:
    """Every byte different from its neighbours, so an offset or a row swap shows."""
    values = np.arange(height * stride, dtype=np.uint32) * 7 + seed * 13
    return (values % 251).astype(np.uint8).reshape(height, stride)


def open_pair(producer, width=64, height=48, **kwargs):
    source = producer(width, height, **kwargs)
    stream = PipeWireStream(source.node_id)
    source.wait_streaming()
    return source, stream


def test_a_pushed_picture_arrives_exactly(session, producer):
    source, stream = open_pair(producer, 64, 48)
    with stream:
        assert stream.wait_negotiated(1) == (64, 48, "BGRX")
        assert stream.format.modifier is None  # shared memory, no DMA-BUF
        picture = pattern(48, 256)
        source.push(picture, damage=[(1, 2, 3, 4), (5, 6, 7, 8)])
        frame = stream.wait_frame(5)
        assert frame is not None
        assert (frame.width, frame.height, frame.stride, frame.pixel_format) == (64, 48, 256,
                                                                                 "BGRX")
        np.testing.assert_array_equal(frame.pixels, picture)
        assert frame.damage == [(1, 2, 3, 4), (5, 6, 7, 8)]
        assert frame.cursor is None
        assert stream.closed_reason is None and stream.dropped == 0


def test_the_stride_comes_from_the_chunk(session, producer):
    source, stream = open_pair(producer, 50, 20, stride=50 * 4 + 56)
    with stream:
        picture = pattern(20, 256)
        source.push(picture)
        frame = stream.wait_frame(5)
        assert frame.stride == 256
        np.testing.assert_array_equal(frame.pixels[:, :200], picture[:, :200])


@pytest.mark.parametrize("spa_format, name", [(12, "BGRA"), (7, "RGBX"), (11, "RGBA")])
def test_each_rgb_format_is_named(session, producer, spa_format, name):
    source, stream = open_pair(producer, 16, 8, spa_format=spa_format)
    with stream:
        assert stream.wait_negotiated(1)[2] == name
        picture = pattern(8, 64, seed=spa_format)
        source.push(picture)
        frame = stream.wait_frame(5)
        assert frame.pixel_format == name
        np.testing.assert_array_equal(frame.pixels, picture)


def test_xrgb_is_read_as_rgbx_one_byte_on(session, producer):
    source, stream = open_pair(producer, 16, 8, spa_format=9)
    with stream:
        assert stream.wait_negotiated(1)[2] == "RGBX"
        picture = pattern(8, 64)
        source.push(picture)
        frame = stream.wait_frame(5)
        assert frame.pixel_format == "RGBX"
        flat = frame.pixels.reshape(-1)
        # Pixel i's R, G, B are bytes 1..3 of the xRGB pixel: now bytes 0..2.
        np.testing.assert_array_equal(flat[:-1], picture.reshape(-1)[1:])


def test_header_pts_is_the_producers_monotonic_stamp(session, producer):
    source, stream = open_pair(producer)
    with stream:
        stamps = []
        for i in range(5):
            before = time.monotonic_ns()
            seq = source.push(pattern(48, 256, seed=i))
            frame = stream.wait_frame(5)
            assert frame.sequence == seq
            assert before <= frame.pts_ns <= frame.arrived_ns <= time.monotonic_ns()
            stamps.append(frame.pts_ns)
        assert stamps == sorted(stamps) and len(set(stamps)) == 5


def test_frames_come_only_on_change_and_the_latest_wins(session, producer):
    source, stream = open_pair(producer)
    with stream:
        assert stream.wait_frame(0.3) is None  # nothing changed: nothing arrives
        assert stream.latest() is None
        for i in range(3):
            source.push(pattern(48, 256, seed=i))
            time.sleep(0.1)  # one graph cycle each: all three reach us before anyone reads
        frame = stream.wait_frame(1)
        np.testing.assert_array_equal(frame.pixels, pattern(48, 256, seed=2))
        assert stream.dropped == 2
        assert stream.wait_frame(0.3) is None  # a still screen
        kept = stream.latest()
        assert kept is frame
        np.testing.assert_array_equal(kept.pixels, pattern(48, 256, seed=2))


def test_the_readers_frame_is_never_overwritten(session, producer):
    source, stream = open_pair(producer)
    with stream:
        source.push(pattern(48, 256, seed=1))
        first = stream.wait_frame(5)
        for i in range(2, 6):  # more frames than we have spare arrays
            source.push(pattern(48, 256, seed=i))
            time.sleep(0.1)
        np.testing.assert_array_equal(first.pixels, pattern(48, 256, seed=1))
        newest = stream.wait_frame(1)
        np.testing.assert_array_equal(newest.pixels, pattern(48, 256, seed=5))


def test_metadata_cursor_arrives_with_its_bitmap(session, producer):
    source, stream = open_pair(producer, cursor=True)
    with stream:
        bitmap = pattern(6, 4 * 5).reshape(6, 5, 4)
        source.push(pattern(48, 256), cursor=(30, 20, 2, 3, bitmap))
        frame = stream.wait_frame(5)
        cursor = frame.cursor
        assert (cursor.x, cursor.y, cursor.hotspot_x, cursor.hotspot_y) == (30, 20, 2, 3)
        np.testing.assert_array_equal(cursor.bitmap, bitmap)
        # A cursor-only update (empty chunk: the pointer moved over a still screen) is
        # a new frame: the kept picture with the new cursor, so the move is seen.
        source.push(np.zeros((48, 256), np.uint8), cursor=(31, 21, 2, 3, None), empty=True)
        moved = stream.wait_frame(5)
        assert moved is not None and moved.sequence != frame.sequence
        np.testing.assert_array_equal(moved.pixels, pattern(48, 256))
        assert (moved.cursor.x, moved.cursor.y, moved.cursor.bitmap) == (31, 21, None)
        assert (stream.cursor.x, stream.cursor.y) == (31, 21)
        assert sum(stream.skipped.values()) == 1
        assert stream.wait_frame(0.3) is None  # and nothing more until something changes
        # A producer repeating the same cursor in an empty buffer shows nothing new.
        source.push(np.zeros((48, 256), np.uint8), cursor=(31, 21, 2, 3, None), empty=True)
        assert stream.wait_frame(0.5) is None
        source.push(np.zeros((48, 256), np.uint8), cursor=None, empty=True)  # hidden
        hidden = stream.wait_frame(5)
        assert hidden is not None and hidden.cursor is None


def test_only_the_damaged_rectangles_are_copied_and_every_frame_is_whole(session, producer):
    source, stream = open_pair(producer)
    with stream:
        picture = pattern(48, 256, seed=1)
        source.push(picture)
        stream.wait_frame(5)
        for i in range(2, 8):  # small changes, each with its damage rectangle
            x, y = 4 * i, 3 * i
            picture = picture.copy()
            picture[y:y + 5, x * 4:(x + 6) * 4] = i * 20
            source.push(picture, damage=[(x, y, 6, 5)])
            got = stream.wait_frame(5)
            np.testing.assert_array_equal(got.pixels, picture)
            assert got.damage == [(x, y, 6, 5)]
        # The arrays that had not held a picture yet were filled in full, then damage
        # was enough.
        assert stream.copies["damage"] >= 4 and stream.copies["full"] <= 3
        # Damage is what the producer says changed: an array brought up to date by
        # it shows only those rectangles of a picture that (wrongly) changed elsewhere
        # too; this is how we know the rest was not copied.
        liar = np.full((48, 256), 7, np.uint8)
        source.push(liar, damage=[(0, 0, 2, 2)])
        got = stream.wait_frame(5)
        np.testing.assert_array_equal(got.pixels[:2, :8], liar[:2, :8])
        assert not np.array_equal(got.pixels, liar)


def test_a_vanished_producer_ends_the_stream(session, producer):
    source, stream = open_pair(producer)
    with stream:
        source.push(pattern(48, 256))
        assert stream.wait_frame(5) is not None
        source.close()
        started = time.monotonic()
        with pytest.raises(CaptureError, match="screencast ended"):
            while time.monotonic() - started < 5:
                stream.wait_frame(0.5)
        assert stream.closed_reason


def test_an_unknown_node_fails_negotiation_in_time(session):
    started = time.monotonic()
    with pytest.raises(CaptureError, match="node 999999"):
        PipeWireStream(999999, negotiate_timeout=1.0)
    assert time.monotonic() - started < 3


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_close_leaks_no_fd_and_closes_the_given_one(session):
    source = ProducerProcess(session, 16, 8)
    before = fd_count()
    for _ in range(3):
        with PipeWireStream(source.node_id):
            pass
    assert fd_count() == before
    # A remote fd, as the portal hands one over: the stream owns and closes it.
    remote = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    remote.connect(str(session.runtime / "pipewire-0"))
    fd = remote.detach()
    stream = PipeWireStream(source.node_id, fd=fd)
    assert stream.wait_negotiated(1)[:2] == (16, 8)
    stream.close()
    stream.close()  # idempotent
    with pytest.raises(OSError):
        os.fstat(fd)
    assert fd_count() == before
    source.close()


def test_a_killed_daemon_ends_the_stream_without_a_hang():
    session = PipeWireSession().start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("XDG_RUNTIME_DIR", str(session.runtime))
            patch.setenv("PIPEWIRE_RUNTIME_DIR", str(session.runtime))
            source = VideoProducer(16, 8)
            stream = PipeWireStream(source.node_id)
            source.wait_streaming()
            outcome = []

            def read_forever() -> None:  # no timeout: only the stream's end can wake it
                try:
                    outcome.append(stream.wait_frame(None))
                except CaptureError as exc:
                    outcome.append(exc)

            reader = threading.Thread(target=read_forever)
            reader.start()
            time.sleep(0.2)
            session.kill("pipewire")
            reader.join(5)
            assert not reader.is_alive(), "wait_frame(None) hung after PipeWire died"
            assert isinstance(outcome[0], CaptureError)
            assert "lost the connection to PipeWire" in str(outcome[0])
            stream.close()
            source.close()
    finally:
        session.stop()


def test_a_remote_fd_that_is_not_pipewire_fails_with_a_hint(session):
    read_end, write_end = os.pipe()
    os.close(write_end)
    before = fd_count()
    started = time.monotonic()
    with pytest.raises(CaptureError) as caught:
        PipeWireStream(1, fd=read_end, negotiate_timeout=2.0)
    assert time.monotonic() - started < 3
    assert caught.value.hint
    with pytest.raises(OSError):
        os.fstat(read_end)  # owned by the stream, closed with it
    assert fd_count() == before - 1


def test_an_exception_in_a_callback_ends_the_stream_instead_of_escaping(session, producer):
    source, stream = open_pair(producer)
    with stream:
        stream.format = "not a format"  # the process callback will raise AttributeError
        source.push(pattern(48, 256))
        with pytest.raises(CaptureError, match="internal error in the _on_process callback"):
            stream.wait_frame(5)
        assert stream.callback_errors == 1


def test_a_new_size_is_renegotiated_and_read(session, producer):
    source, stream = open_pair(producer, 64, 48)
    with stream:
        source.push(pattern(48, 256, seed=1))
        before = stream.wait_frame(5)
        source.resize(40, 30)  # the output's mode changed
        deadline = time.monotonic() + 5
        while stream.wait_negotiated(1)[:2] != (40, 30) and time.monotonic() < deadline:
            time.sleep(0.01)
        source.push(pattern(30, 160, seed=2))
        frame = stream.wait_frame(5)
        assert (frame.width, frame.height, frame.stride) == (40, 30, 160)
        np.testing.assert_array_equal(frame.pixels, pattern(30, 160, seed=2))
        np.testing.assert_array_equal(before.pixels, pattern(48, 256, seed=1))


def test_linear_dmabufs_are_mapped_and_synced(session, producer):
    source = producer(64, 48, modifier=0)  # DRM_FORMAT_MOD_LINEAR
    with PipeWireStream(source.node_id) as stream:
        assert stream.format.modifier == 0
        source.wait_streaming()
        source.push(pattern(48, 256))
        # The buffer is a memfd labelled DMA-BUF (no GPU here): mapping it works, and the
        # DMA_BUF_IOCTL_SYNC bracket we must issue around the read is refused by the
        # kernel, which ends capture with the reason instead of reading unsynced memory.
        with pytest.raises(CaptureError, match="DMA-BUF: DMA_BUF_IOCTL_SYNC failed"):
            stream.wait_frame(5)


def test_a_tiled_modifier_is_never_accepted(session, producer):
    x_tiled = 0x0100000000000001  # I915_FORMAT_MOD_X_TILED: unreadable without the GPU
    source = producer(64, 48, modifier=x_tiled)
    # Either we time out, or wireplumber gives up on the link first and unlinks us.
    with pytest.raises(CaptureError, match="agreed no video format|offers no format"):
        PipeWireStream(source.node_id, negotiate_timeout=1.5)


def test_a_gstreamer_producer_is_read_too(session):
    """A producer that is not built on our binding: GStreamer's pipewiresink."""
    gst = session.spawn("gst", [
        "gst-launch-1.0", "-q", "videotestsrc", "is-live=true", "pattern=solid-color",
        "foreground-color=0xff336699", "!",
        "video/x-raw,format=BGRx,width=96,height=40,framerate=30/1", "!",
        "pipewiresink", "mode=provide",
        "stream-properties=props,media.class=Video/Source,node.name=rootstream-gst-test"])
    try:
        node = session.node_id("rootstream-gst-test")
        with PipeWireStream(node) as stream:
            assert stream.wait_negotiated(1) == (96, 40, "BGRX")
            assert stream.format.framerate == (30, 1)
            frame = stream.wait_frame(5)
            assert (frame.width, frame.height) == (96, 40) and frame.stride >= 96 * 4
            pixels = frame.pixels[:, :96 * 4].reshape(40, 96, 4)
            assert (pixels[:, :, :3] == (0x99, 0x66, 0x33)).all()  # B, G, R of 0x336699
            second = stream.wait_frame(5)  # a live source keeps sending
            assert second.sequence > frame.sequence
        assert gst.poll() is None, session.log_tail("gst")
    finally:
        session.kill("gst")


def test_buffers_that_queue_up_while_we_are_busy_are_read_newest_first(session, producer):
    source, stream = open_pair(producer)
    with stream:
        source.push(pattern(48, 256, seed=1))
        stream.wait_frame(5)
        # Hold our loop thread (as a slow callback would) while three buffers arrive:
        # one process call then finds all three ready and must keep only the newest.
        stream._lib.pw_thread_loop_lock(stream._loop)
        try:
            for i in range(2, 5):
                source.push(pattern(48, 256, seed=i))
                time.sleep(0.05)
        finally:
            stream._lib.pw_thread_loop_unlock(stream._loop)
        frame = stream.wait_frame(5)
        np.testing.assert_array_equal(frame.pixels, pattern(48, 256, seed=4))
        assert stream.dropped == 2
        assert stream.wait_frame(0.3) is None
        assert stream.process_ns.total == 2  # one callback for the first, one for the three


def test_a_pointer_moving_over_a_still_screen_shows_under_the_rate_cap(session, producer):
    """A desktop that sends the cursor as metadata sends only cursor updates while
    the pointer moves over a still screen: each must become a frame with the
    pointer drawn where it went, no faster than the capture's fps."""
    from rootstream.capture.portal import PortalCapture

    source = producer(64, 48, cursor=True)
    stream = PipeWireStream(source.node_id, cursor_metadata=True)
    source.wait_streaming()
    fps = 20
    with PortalCapture.from_stream(stream, fps=fps) as capture:
        picture = np.zeros((48, 256), np.uint8)
        picture.reshape(48, 64, 4)[...] = (10, 20, 30, 0)  # B, G, R, X
        arrow = np.zeros((4, 4, 4), np.uint8)
        arrow[...] = (0, 0, 255, 255)  # opaque red, sent once
        source.push(picture, cursor=(8, 8, 0, 0, arrow))
        first = capture.grab(timeout=5)
        assert first.pixels.reshape(48, 64, 4)[9, 9, :3].tolist() == [0, 0, 255]
        returned = []
        for x in (20, 30, 40):  # cursor-only updates: empty chunks, no bitmap
            source.push(np.zeros((48, 256), np.uint8), cursor=(x, 30, 0, 0, None), empty=True)
            frame = capture.grab(timeout=5)
            assert frame is not None, "a pointer move over a still screen gave no frame"
            returned.append(time.monotonic())
            shown = frame.pixels.reshape(48, 64, 4)
            assert shown[31, x + 1, :3].tolist() == [0, 0, 255]  # the pointer, moved
            assert shown[9, 9, :3].tolist() == [10, 20, 30]  # not left where it was
            assert shown[2, 60, :3].tolist() == [10, 20, 30]  # the kept picture
        gaps = np.diff(returned)
        # The bucket allows a short burst; after it, moves come 1/fps apart at most.
        assert gaps[-1] >= 0.8 / fps
        assert capture.grab(timeout=0.3) is None  # nothing moved: nothing new
