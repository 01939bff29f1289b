"""The client's input service: SDL input in the presenter's window, sent to the host at once.

SdlInputCapture is attached to the SDL presenter when its window opens; each
batch it reads becomes one INPUT datagram, sent from the thread that read it
(the presenter's, which pumps SDL events) the moment it is read: never
queued behind video, which travels the other way on other threads.

Under X11 an X11InputReader (rootstream.input.x11_reader) reads the
window's keys and absolute motion on a thread and X connection of its own,
so they never wait for the presenter's loop (a picture wait and a present,
11 ms and more per frame without a GPU); the capture keeps the rest and the
hotkeys' actions (rootstream.input.window_input says who does what).

Threads.  The capture's events arrive on the presenter's thread, the
reader's batches on its own; the periodic held-state snapshot (``tick``)
comes from the client's receive thread.  One lock covers "read the held
state, send" on all three, so a snapshot can never be built before a key
press and sent after it (the host would release the key, then press it
again at the next snapshot).  ``tick`` makes
no SDL call; everything that does (attaching, closing) runs on the
presenter's thread.

With the ``x11`` presenter the reader reads everything (clicks and the
wheel too) and X11WindowCapture (rootstream.input.x11_capture) keeps the
held state and the hotkeys, without SDL's window; game controllers come
from SDL's game-controller API on a GamepadPump thread
(rootstream.input.sdl_gamepads); the reader also grabs the pointer for
Ctrl+Alt+Shift+Z (relative motion, rootstream.input.x11_pointer_grab).  ``null``
and ``kms`` have no window events to read: input is skipped with one log line.

The stats overlay (Ctrl+Alt+Shift+S) shows ``figures()`` (the client's
live figures) in the window, refreshed twice a second from ``tick``.

With several viewers only the one in control sends input
(rootstream.client.handoff calls ``set_in_control``); the others' captures
keep running, for the hotkeys and so that a viewer given control sends its
true held state with the next snapshot, but nothing leaves.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

from rootstream.errors import ProtocolError
from rootstream.input.rumble_link import RumblePlayer
from rootstream.present.base import map_to_stream
from rootstream.protocol import Capability, PacketType
from rootstream.protocol.control import Rumble
from rootstream.protocol.input import encode_input
from rootstream.session import ClientService, Sender, SessionInfo

OVERLAY_EVERY_NS = 500_000_000


class ClientInput(ClientService):
    """Capture input in the SDL window and send it to the host.

    ``figures()`` returns the client's live figures for the stats overlay
    (see ``format_overlay``); ``capture_options`` go to SdlInputCapture
    (e.g. ``gamepads=False``).
    """

    name = "input"

    def __init__(self, *, figures: Callable[[], dict] | None = None,
                 log: Callable[[str], None] = print, capture_options: dict | None = None,
                 x11_reader: bool = True):
        self._figures = figures
        self._log = log
        self._capture_options = dict(capture_options or {})
        self._use_x11_reader = x11_reader
        self._lock = threading.Lock()
        self._send: Sender | None = None
        self._presenter = None
        self.capture = None  # SdlInputCapture once attached
        self.reader = None  # X11InputReader: keys and motion on a thread of their own
        self.gamepad_pump = None  # GamepadPump: SDL's controllers beside the x11 presenter
        self._translator = None
        self.counters: Counter[str] = Counter()
        self._overlay = OverlayFigures()
        self._next_overlay_ns = 0
        self.host_declined = False  # the host's config says it injects no input
        self.in_control = True  # another viewer holds control: nothing is sent
        # Ctrl+Alt+Shift+C/A/D: ask for control, give it, keep it (set by ClientControl).
        self.on_control_hotkey: Callable[[str], object] | None = None
        # The host's rumble, on the controllers the capture opened (under _lock:
        # the capture closes a controller on the window's thread).
        self.rumble = RumblePlayer(self._controller)

    @property
    def wants(self) -> int:
        """Hello capability bits: rumble when game controllers are read."""
        return Capability.RUMBLE if self._capture_options.get("gamepads", True) else 0

    @property
    def capturing(self) -> bool:
        """The window's keys go to the host (and the capture's hotkeys rule the window)."""
        return self.capture is not None and not self.capture.closed

    # -- hooks ------------------------------------------------------------------

    def session_started(self, session: SessionInfo, send: Sender) -> None:
        if not session.config.capabilities & Capability.INPUT:
            # The host would drop every INPUT datagram: send none, and say why once.
            if not self.host_declined:
                self._log("rootstream: input is not sent: the host injects none (it runs "
                          "with --input none or could not open uinput or xtest; its log "
                          "says which)")
            self.host_declined = True
            self._send = None
            return
        self.host_declined = False
        self._send = send

    def attach_presenter(self, presenter) -> None:
        if presenter.name == "x11" and self._use_x11_reader:
            self._attach_x11(presenter)
            return
        if presenter.name != "sdl":
            self._log(f"rootstream: input is not captured with the {presenter.name} presenter "
                      "(it has no window to read keys from); use --present sdl to play")
            return
        from rootstream.input.sdl_capture import SdlInputCapture

        self._presenter = presenter
        options = dict(self._capture_options)
        options.setdefault("on_toggle_fullscreen", presenter.toggle_fullscreen)
        options.setdefault("on_toggle_stats", self._toggle_stats)
        options.setdefault("on_control", self._control_hotkey)
        capture = SdlInputCapture(presenter.window_to_stream, self._send_events,
                                  lambda: (presenter.width, presenter.height), **options)
        presenter.add_event_listener(self._on_event)
        self.capture = capture
        self._start_reader(presenter)
        if self.host_declined:
            return  # the window's hotkeys still work; the keys go nowhere (said once)
        self._log("rootstream: input goes to the host; Ctrl+Alt+Shift+Z captures the "
                  "pointer, +F toggles fullscreen, +S the stats overlay, +C asks for "
                  "control when others watch")

    def tick(self, now_ns: int) -> None:
        capture = self.capture
        if capture is None or capture.closed:
            return
        with self._lock:
            capture.tick(now_ns)
        if capture.stats_visible and now_ns >= self._next_overlay_ns:
            self._next_overlay_ns = now_ns + OVERLAY_EVERY_NS
            self._show_overlay(now_ns)

    def session_ended(self, reason: str) -> None:
        # The host releases everything the session held on its side; a new
        # session (a reconnect) gets the true state with its first snapshot.
        self._send = None
        with self._lock:
            self.rumble.stop_all()

    def on_control(self, message) -> None:
        if isinstance(message, Rumble):
            with self._lock:
                self.rumble.play(message)

    def close(self) -> None:
        """On the presenter's thread (the client loop's caller): let go of SDL."""
        reader, self.reader = self.reader, None
        if reader is not None:
            reader.stop()  # first: no batch may arrive for a closed capture
        pump, self.gamepad_pump = self.gamepad_pump, None
        if pump is not None:
            pump.stop()  # its thread closes the controllers: the host hears they went
        capture, self.capture = self.capture, None
        if capture is None:
            return
        with self._lock:
            capture.close()
        if self._presenter is not None:
            self._presenter.remove_event_listener(self._on_event)
            self._set_overlay(None)

    def _attach_x11(self, presenter) -> None:
        """The x11 presenter: keys, clicks, the wheel and motion all from the reader."""
        from rootstream.errors import InputError
        from rootstream.input.x11_capture import X11WindowCapture

        self._presenter = presenter
        capture = X11WindowCapture(self._send_events,
                                   on_toggle_fullscreen=presenter.toggle_fullscreen,
                                   on_toggle_stats=self._toggle_stats,
                                   on_toggle_pointer_capture=self._toggle_pointer_grab,
                                   on_control=self._control_hotkey, log=self._log)
        self.capture = capture  # before the reader: its first batch may come at once
        try:
            self.reader = self._open_reader(presenter, buttons=True,
                                            on_capture=self._on_pointer_grab)
        except InputError as exc:
            self.capture = None
            self._log(f"rootstream: input is not captured: {exc}")
            return
        presenter.add_event_listener(self._on_event)
        if self.host_declined:
            return  # the hotkeys still work; the keys go nowhere (said once)
        self._start_gamepads(capture)
        self._log("rootstream: input goes to the host (keyboard, mouse, game controllers); "
                  "Ctrl+Alt+Shift+Z captures the pointer, +F toggles fullscreen, "
                  "+S the stats overlay, +C asks for control when others watch")

    def _toggle_pointer_grab(self) -> None:
        reader = self.reader
        if reader is not None:
            reader.toggle_pointer_capture()

    def _on_pointer_grab(self, captured: bool, problem: str) -> None:
        """The reader's thread: it grabbed the pointer or let it go."""
        capture = self.capture
        if capture is not None:
            with self._lock:
                capture.captured(captured, problem)

    def _start_gamepads(self, capture) -> None:
        from rootstream.input.sdl_gamepads import GamepadPump

        def handle(event) -> None:
            with self._lock:
                capture.handle_sdl(event)

        def close() -> None:
            with self._lock:
                capture.close_gamepads()

        self.gamepad_pump = GamepadPump(capture, handle, close,
                                        enabled=self._capture_options.get("gamepads", True))
        self.gamepad_pump.start()

    def _start_reader(self, presenter) -> None:
        """Read keys, motion and clicks on their own X connection and thread, off the
        window loop.

        SDL on X11 only: elsewhere (Wayland, the dummy driver) the capture
        reads everything, as before.
        """
        if presenter.x11_window is None or not self._use_x11_reader:
            return
        from rootstream.errors import InputError

        self.capture.keys_read_elsewhere = True
        try:
            self.reader = self._open_reader(presenter, buttons=True)
        except InputError as exc:
            self.capture.keys_read_elsewhere = False
            self._log(f"rootstream: keys are read in the window loop: {exc}")
            return
        self.capture.buttons_read_elsewhere = self.reader.reads_buttons

    def _open_reader(self, presenter, *, buttons: bool, on_capture=None):
        from rootstream.input.window_input import WindowInputTranslator
        from rootstream.input.x11_reader import X11InputReader

        reader = X11InputReader(presenter.x11_window, self._on_window_input,
                                display=getattr(presenter, "display_name", None),
                                buttons=buttons, on_capture=on_capture)
        self._translator = WindowInputTranslator()
        reader.start()
        return reader

    def _on_window_input(self, batch, window_size) -> None:
        """The reader's thread: one batch -> one datagram, now."""
        capture, presenter = self.capture, self._presenter
        if capture is None or capture.closed or presenter is None:
            return
        stream_size = (presenter.width, presenter.height)

        def to_stream(x: int, y: int):
            return map_to_stream(x, y, *stream_size, *window_size)

        with self._lock:
            events, released = self._translator.translate(
                batch, capture.held_keys, pointer_captured=capture.pointer_captured,
                to_stream=to_stream, stream_size=stream_size,
                held_buttons=capture.held_buttons)
            capture.send_read_elsewhere(events, released)

    def _controller(self, index: int):
        capture = self.capture
        return None if capture is None or capture.closed else capture.controller(index)

    # -- the presenter's thread ---------------------------------------------------

    def _on_event(self, event) -> None:
        capture = self.capture
        if capture is not None:
            with self._lock:
                capture.handle(event)

    def set_in_control(self, holding: bool) -> None:
        """Whether this viewer holds control (any thread): only then does input leave."""
        self.in_control = holding

    def _control_hotkey(self, action: str) -> None:
        if self.on_control_hotkey is not None:
            self.on_control_hotkey(action)

    def _send_events(self, events) -> None:
        """One batch from the capture: one datagram, now."""
        send = self._send
        if not self.in_control:
            self.counters["not_in_control"] += 1  # watching: the host would drop it
            return
        if send is None:
            # Between sessions (the next snapshot heals), or a host without input.
            self.counters["host_declined" if self.host_declined else "unsent"] += 1
            return
        try:
            payload = encode_input(events)
        except ProtocolError:
            self.counters["unencodable"] += 1
            return
        send(PacketType.INPUT, payload)
        self.counters["datagrams"] += 1

    def _toggle_stats(self) -> None:
        capture = self.capture
        if capture is not None and capture.stats_visible:
            problem = getattr(self._presenter, "overlay_problem", lambda: "")()
            if problem and not self.counters["overlay_unavailable"]:
                self._log(f"rootstream: the stats overlay cannot draw text: {problem}")
            self.counters["overlay_unavailable"] += bool(problem)
            self._show_overlay(time.monotonic_ns())
        else:
            self._set_overlay(None)

    def _show_overlay(self, now_ns: int) -> None:
        if self._figures is None:
            return
        self._set_overlay(self._overlay.lines(self._figures(), now_ns))

    def _set_overlay(self, lines) -> None:
        set_overlay = getattr(self._presenter, "set_overlay", None)
        if set_overlay is not None:
            set_overlay(lines)


class OverlayFigures:
    """The client's cumulative figures -> the overlay's lines (rates over the last refresh).

    ``figures`` keys: ``frames_presented``, ``received_bytes`` (cumulative);
    ``bitrate_kbps`` (the host's encoder rate); ``latency_ms`` (stage ->
    {"p50", "p99"}); ``drops`` (name -> cumulative count).
    """

    def __init__(self) -> None:
        self._previous: tuple[int, int, int] | None = None  # (ns, frames, bytes)

    def lines(self, figures: dict, now_ns: int) -> list[str]:
        frames, received = figures.get("frames_presented", 0), figures.get("received_bytes", 0)
        fps = mbps = 0.0
        if self._previous is not None and now_ns > self._previous[0]:
            seconds = (now_ns - self._previous[0]) / 1e9
            fps = (frames - self._previous[1]) / seconds
            mbps = (received - self._previous[2]) * 8 / seconds / 1e6
        self._previous = (now_ns, frames, received)
        lines = [f"{fps:5.1f} fps  {mbps:6.2f} Mbit/s in  "
                 f"(host encodes {figures.get('bitrate_kbps', 0) / 1000:.2f} Mbit/s)"]
        for stage, p in figures.get("latency_ms", {}).items():
            if p:
                lines.append(f"{stage:>8} {p['p50']:6.1f} ms p50 {p['p99']:6.1f} ms p99")
        drops = {k: v for k, v in figures.get("drops", {}).items() if v}
        lines.append("drops: " + (", ".join(f"{k} {v}" for k, v in sorted(drops.items()))
                                  or "none"))
        return lines + list(figures.get("control", ()))  # "control: you; 2 watching"
