"""A bad network on demand: loss, bursts, reordering, duplication, delay, a rate cap.

Two layers, so tests can pick the one they need:

* :class:`ImpairmentModel` is the whole behaviour with no sockets and no clock:
  ``process(datagram, now)`` says when (if ever) each copy of a datagram comes
  out.  Tests drive it datagram by datagram with made-up times.
* :class:`LossyRelay` is a thin UDP relay on loopback that runs one model per
  direction in a background thread, for end-to-end tests and benches.

Times are integer nanoseconds on the ``time.monotonic_ns()`` scale.  Every
random choice comes from a seeded generator, so a failing run can be replayed.
"""

from __future__ import annotations

import heapq
import random
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field, fields

from rootstream.errors import NetworkError

_NS_PER_MS = 1_000_000
_NS_PER_S = 1_000_000_000
_MAX_DATAGRAM = 65535
_SOCKET_BUFFER = 4 * 1024 * 1024


def _invalid(name: str, value: object) -> NetworkError:
    return NetworkError(
        "impairment setting is out of range",
        hint="probabilities are between 0 and 1; delays, rates and sizes are not negative",
        details=[f"{name}={value!r}"],
    )


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise _invalid(name, value)


@dataclass(frozen=True)
class GilbertElliott:
    """Bursty loss: a two-state Markov chain stepped once per datagram.

    In the good state a datagram is lost with ``loss_in_good``, in the bad
    state with ``loss_in_bad``.  A Wi-Fi fade or a congested hop looks like a
    run of bad states: the mean run lasts ``1 / p_bad_to_good`` datagrams.
    """

    p_good_to_bad: float
    p_bad_to_good: float
    loss_in_bad: float = 1.0
    loss_in_good: float = 0.0

    def __post_init__(self) -> None:
        for item in fields(self):
            _check_probability(f"burst.{item.name}", getattr(self, item.name))
        if self.p_bad_to_good == 0.0 and self.p_good_to_bad > 0.0:
            # A chain that can never leave the bad state is a dead link, not a burst.
            raise _invalid("burst.p_bad_to_good", self.p_bad_to_good)

    @property
    def bad_share(self) -> float:
        """Long-run share of datagrams seen in the bad state."""
        total = self.p_good_to_bad + self.p_bad_to_good
        return self.p_good_to_bad / total if total else 0.0

    @property
    def mean_loss(self) -> float:
        bad = self.bad_share
        return bad * self.loss_in_bad + (1.0 - bad) * self.loss_in_good


@dataclass(frozen=True)
class Impairment:
    """What one direction of the link does to datagrams.

    ``loss`` is independent random loss; ``burst`` replaces it with
    Gilbert-Elliott loss (give one or the other).  A ``reorder``ed datagram is
    held back an extra ``reorder_delay_ms`` so later traffic overtakes it.
    ``jitter_ms`` spreads the delay uniformly over +-jitter, which reorders
    too once it exceeds the gap between datagrams, as on a real path.
    ``rate_bps`` is a bottleneck link: datagrams leave one after another at
    that rate, and one arriving when more than ``queue_bytes`` already wait is
    dropped (tail drop), as a router's buffer does.
    """

    loss: float = 0.0
    burst: GilbertElliott | None = None
    reorder: float = 0.0
    reorder_delay_ms: float = 10.0
    duplicate: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_bps: int | None = None
    queue_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        for name in ("loss", "reorder", "duplicate"):
            _check_probability(name, getattr(self, name))
        if self.burst is not None and self.loss:
            raise NetworkError(
                "impairment has both loss and burst",
                hint="put the good-state loss in GilbertElliott(loss_in_good=...)",
                details=[f"loss={self.loss!r}", f"burst={self.burst!r}"],
            )
        for name in ("reorder_delay_ms", "delay_ms", "jitter_ms", "queue_bytes"):
            if getattr(self, name) < 0:
                raise _invalid(name, getattr(self, name))
        if self.rate_bps is not None and self.rate_bps <= 0:
            raise _invalid("rate_bps", self.rate_bps)


@dataclass
class ImpairmentCounters:
    """What a model did; ``forwarded`` counts copies released, duplicates included."""

    received: int = 0
    forwarded: int = 0
    lost: int = 0
    overflowed: int = 0
    duplicated: int = 0
    reordered: int = 0

    @property
    def dropped(self) -> int:
        return self.lost + self.overflowed


@dataclass
class ImpairmentModel:
    """The sans-IO impairment of one direction; see :class:`Impairment`."""

    settings: Impairment = field(default_factory=Impairment)
    seed: int = 0
    counters: ImpairmentCounters = field(default_factory=ImpairmentCounters)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._bad_state = False
        # When the bottleneck finishes sending everything accepted so far.
        self._link_free_at = 0

    def process(self, datagram: bytes, now: int) -> list[tuple[int, bytes]]:
        """The copies of ``datagram`` that come out, as (release_ns, datagram).

        ``now`` is the arrival time in monotonic nanoseconds and must not go
        backwards.  An empty list means the datagram was dropped.
        """
        settings = self.settings
        counters = self.counters
        counters.received += 1
        if self._lose():
            counters.lost += 1
            return []
        departure = now
        if settings.rate_bps is not None:
            departure = self._queue(len(datagram), now)
            if departure is None:
                counters.overflowed += 1
                return []
        release = departure + round(settings.delay_ms * _NS_PER_MS)
        if settings.jitter_ms:
            spread = round(settings.jitter_ms * _NS_PER_MS)
            # A datagram cannot arrive before it has left the bottleneck.
            release = max(departure, release + self._rng.randint(-spread, spread))
        if settings.reorder and self._rng.random() < settings.reorder:
            release += round(settings.reorder_delay_ms * _NS_PER_MS)
            counters.reordered += 1
        out = [(release, datagram)]
        if settings.duplicate and self._rng.random() < settings.duplicate:
            out.append((release, datagram))
            counters.duplicated += 1
        counters.forwarded += len(out)
        return out

    def _lose(self) -> bool:
        burst = self.settings.burst
        if burst is None:
            loss = self.settings.loss
            return bool(loss) and self._rng.random() < loss
        if self._bad_state:
            if self._rng.random() < burst.p_bad_to_good:
                self._bad_state = False
        elif self._rng.random() < burst.p_good_to_bad:
            self._bad_state = True
        loss = burst.loss_in_bad if self._bad_state else burst.loss_in_good
        return self._rng.random() < loss

    def _queue(self, size: int, now: int) -> int | None:
        rate = self.settings.rate_bps
        waiting_ns = max(0, self._link_free_at - now)
        waiting_bytes = waiting_ns * rate // (8 * _NS_PER_S)
        # An idle link sends at once whatever the buffer size, as a router does.
        if waiting_ns and waiting_bytes + size > self.settings.queue_bytes:
            return None
        start = max(now, self._link_free_at)
        self._link_free_at = start + -(-size * 8 * _NS_PER_S // rate)
        return self._link_free_at


class LossyRelay:
    """A UDP relay between one client and one host, impairing both directions.

    The client sends to :attr:`address`; the relay forwards to ``upstream``
    from a second socket, so the host sees the relay as its client, and sends
    the host's replies back to the client address it last heard from (a client
    that rebinds its port keeps working, as behind a NAT).  The flat keyword
    settings apply to both directions; ``to_host`` / ``to_client`` override
    one direction.  Datagrams from anyone but ``upstream`` on the host side are
    dropped and counted in :attr:`foreign`.
    """

    def __init__(
        self,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        upstream: tuple[str, int] | None = None,
        *,
        loss: float = 0.0,
        burst: GilbertElliott | None = None,
        reorder: float = 0.0,
        duplicate: float = 0.0,
        delay_ms: float = 0.0,
        jitter_ms: float = 0.0,
        rate_bps: int | None = None,
        queue_bytes: int = 64 * 1024,
        seed: int = 0,
        to_host: Impairment | None = None,
        to_client: Impairment | None = None,
        max_pending: int = 4096,
    ):
        if upstream is None:
            raise NetworkError(
                "the relay needs an upstream address", hint="LossyRelay(upstream=(host, port))"
            )
        both = Impairment(
            loss=loss,
            burst=burst,
            reorder=reorder,
            duplicate=duplicate,
            delay_ms=delay_ms,
            jitter_ms=jitter_ms,
            rate_bps=rate_bps,
            queue_bytes=queue_bytes,
        )
        # Distinct seeds per direction: the same seed would make both
        # directions lose the same datagram numbers, which no real link does.
        self.to_host = ImpairmentModel(to_host or both, seed=2 * seed)
        self.to_client = ImpairmentModel(to_client or both, seed=2 * seed + 1)
        self.client: tuple[str, int] | None = None
        self.foreign = 0
        self.send_errors = 0
        self._max_pending = max_pending
        self._pending: list[tuple[int, int, bool, bytes]] = []
        self._sequence = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._sockets: list[socket.socket] = []
        try:
            family = socket.getaddrinfo(listen[0], listen[1], type=socket.SOCK_DGRAM)[0][0]
            # Resolved once, so replies can be matched against the address
            # the kernel reports (a name such as "localhost" never matches).
            resolved = socket.getaddrinfo(upstream[0], upstream[1], family, socket.SOCK_DGRAM)
            self.upstream: tuple[str, int] = resolved[0][4][:2]
            self._client_side = self._open(family)
            self._client_side.bind(listen)
            self._host_side = self._open(family)
            self._wake_reader, self._wake_writer = socket.socketpair()
            self._sockets += [self._wake_reader, self._wake_writer]
        except OSError as exc:
            self._close_sockets()
            raise NetworkError(
                "could not open the relay sockets",
                details=[f"listen={listen!r} upstream={upstream!r}: {exc}"],
            ) from exc
        self.address: tuple[str, int] = self._client_side.getsockname()[:2]

    def _open(self, family: int) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sockets.append(sock)
        sock.setblocking(False)
        # The relay must not be the bottleneck a test did not ask for: with
        # small default buffers a burst of fragments would be lost here.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
        return sock

    @property
    def counters(self) -> dict[str, ImpairmentCounters]:
        return {"to_host": self.to_host.counters, "to_client": self.to_client.counters}

    def start(self) -> LossyRelay:
        if self._thread is not None or self._stopping.is_set():
            raise NetworkError("a relay starts once", hint="make a new LossyRelay")
        self._thread = threading.Thread(target=self._run, name="lossy-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and close every socket; datagrams still held are discarded."""
        self._stopping.set()
        if self._thread is not None and self._thread.is_alive():
            try:
                self._wake_writer.send(b"x")
            except OSError:
                pass
            self._thread.join(5.0)
        self._close_sockets()

    def __enter__(self) -> LossyRelay:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            sock.close()

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._client_side, selectors.EVENT_READ, True)
            selector.register(self._host_side, selectors.EVENT_READ, False)
            selector.register(self._wake_reader, selectors.EVENT_READ, None)
            while not self._stopping.is_set():
                self._release_due(time.monotonic_ns())
                timeout = None
                if self._pending:
                    timeout = max(0.0, (self._pending[0][0] - time.monotonic_ns()) / _NS_PER_S)
                for key, _ in selector.select(timeout):
                    if key.data is not None:
                        self._drain(key.fileobj, from_client=key.data)

    def _drain(self, sock: socket.socket, from_client: bool) -> None:
        # Bounded so a flood in one direction cannot starve releases.
        for _ in range(256):
            try:
                datagram, source = sock.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # An ICMP error reported on a UDP socket: nothing to forward.
                continue
            now = time.monotonic_ns()
            if from_client:
                self.client = source[:2]
                model = self.to_host
            elif source[:2] != self.upstream or self.client is None:
                self.foreign += 1
                continue
            else:
                model = self.to_client
            for release, copy in model.process(datagram, now):
                if len(self._pending) >= self._max_pending:
                    model.counters.overflowed += 1
                    model.counters.forwarded -= 1
                    continue
                self._sequence += 1
                heapq.heappush(self._pending, (release, self._sequence, from_client, copy))

    def _release_due(self, now: int) -> None:
        pending = self._pending
        while pending and pending[0][0] <= now:
            _, _, to_host, datagram = heapq.heappop(pending)
            try:
                if to_host:
                    self._host_side.sendto(datagram, self.upstream)
                else:
                    self._client_side.sendto(datagram, self.client)
            except OSError:
                self.send_errors += 1
