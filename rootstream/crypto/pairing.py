"""Pairing: the host shows a 6-digit code, the user types it on the client, and
the two machines swap long-term public keys under a CPace PAKE keyed by it.

Sans-IO: the classes take bytes and return bytes; the host/client loops carry
them in CONTROL packets.  Messages (see docs/SECURITY.md for byte layouts)::

    client                                   host
    START   sid, Ya                  ->
                                     <-      REPLY   sid, Yb, box_h(host key, host name)
    CONFIRM sid, box_c(client key, name) ->
                                     <-      DONE    sid, tag
    REJECT  sid, reason   (either way, unauthenticated, ends the exchange)

The boxes are ChaCha20-Poly1305 under keys derived from the CPace output, so
opening one proves the sender used the same code (key confirmation, host
first, then client), and the public keys inside are bound to this exchange:
a relay that changes Ya, Yb or a key is left holding boxes it cannot open or
forge.  Each START the host answers uses up one of ``max_tries`` (3): an
attacker who completes the PAKE with a guessed code learns from REPLY whether
the guess was right, so an answered START is a guess whether or not CONFIRM
ever arrives.  After the last try fails the code is burned and a new one must
be shown.  STARTs closer together than ``min_interval`` are refused without
being answered, so they cost no try and give no guess.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions

from rootstream.crypto import cpace
from rootstream.crypto.identity import Identity, fingerprint
from rootstream.crypto.pairing_wire import (  # noqa: F401 - the names pairing always had
    _BOX_MAX,
    _BOX_MIN,
    CODE_DIGITS,
    CONFIRMATION_FAILED,
    KIND_CONFIRM,
    KIND_DONE,
    KIND_REJECT,
    KIND_REPLY,
    KIND_ROOM_START,
    KIND_START,
    KINDS,
    MALFORMED,
    PREFIX,
    REASON_BURNED,
    REASON_EXPIRED,
    REASON_HINTS,
    REASON_MESSAGES,
    REASON_RATE_LIMITED,
    REASON_WRONG_CODE,
    SID_SIZE,
    TAG_SIZE,
    UNKNOWN_EXCHANGE,
    VERSION,
    PairingFailed,
    PairingMessage,
    _failed,
    _pack_peer,
    _unpack_peer,
    default_peer_name,
    format_code,
    new_pairing_code,
    normalise_code,
    reject_message,
)
from rootstream.crypto.trust import check_peer_name
from rootstream.errors import PairingError

_NONCE_FIRST = bytes(12)
_NONCE_SECOND = bytes(11) + b"\x01"


@dataclass(frozen=True)
class _Keys:
    host_to_client: bytes
    client_to_host: bytes


def _derive_keys(isk: bytes) -> _Keys:
    def derive(label: bytes) -> bytes:
        return hashlib.blake2b(label, key=isk, digest_size=32, person=b"rs-pair-v1").digest()

    return _Keys(derive(b"host->client"), derive(b"client->host"))


def _seal(key: bytes, nonce: bytes, ad: bytes, plain: bytes) -> bytes:
    return nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt(plain, ad, nonce, key)


def _open(key: bytes, nonce: bytes, ad: bytes, box: bytes) -> bytes | None:
    try:
        return nacl.bindings.crypto_aead_chacha20poly1305_ietf_decrypt(box, ad, nonce, key)
    except nacl.exceptions.CryptoError:
        return None


@dataclass(frozen=True)
class PairingResult:
    """The peer a successful pairing vouches for; store it in the TrustStore."""

    public_key: bytes
    name: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)


# -- client ------------------------------------------------------------------


class PairingClient:
    """The side that types the code.  ``start()``, then feed each host message
    to ``receive()`` and send back what it returns, until ``result`` is set."""

    START_KIND = KIND_START
    CHANNEL = cpace.CHANNEL_ID  # a room code's exchange has its own (rootstream.crypto.room)

    def __init__(self, identity: Identity, code: str, *, name: str | None = None,
                 _sid: bytes | None = None, _scalar: bytes | None = None):
        self.identity = identity
        self.name = check_peer_name(name if name is not None else default_peer_name())
        self._code = normalise_code(code).encode("ascii")
        # _sid and _scalar are fixed only by the byte-exact test vectors.
        self.sid = _sid if _sid is not None else os.urandom(SID_SIZE)
        self._scalar = _scalar if _scalar is not None else cpace.random_scalar()
        self._share = cpace.public_share(self._scalar,
                                         cpace.generator(self._code, self.sid, self.CHANNEL))
        self._start = bytes(PairingMessage(self.START_KIND, self.sid, self._share))
        self._keys: _Keys | None = None
        self._host: PairingResult | None = None
        self._confirm: bytes | None = None
        self._reply_body: bytes | None = None
        self.result: PairingResult | None = None
        self.failed = False

    def start(self) -> bytes:
        """The START message (the same bytes every call, for retransmission)."""
        return self._start

    def receive(self, data: bytes) -> bytes | None:
        if self.failed or self.result is not None:
            raise PairingError("pairing exchange is already over")
        msg = PairingMessage.parse(data)
        if msg.sid != self.sid:
            raise PairingError(UNKNOWN_EXCHANGE)
        if msg.kind == KIND_REJECT:
            self.failed = True
            raise _failed(msg.body[0], None)
        if msg.kind == KIND_REPLY and self._confirm is None:
            return self._on_reply(msg)
        if msg.kind == KIND_REPLY and bytes(msg.body) == self._reply_body:
            return self._confirm  # our CONFIRM was lost and the host resent REPLY
        if msg.kind == KIND_DONE and self._confirm is not None:
            return self._on_done(msg)
        raise PairingError("pairing message arrived out of order")

    def _fail(self, reason: int) -> PairingFailed:
        self.failed = True
        return _failed(reason, reject_message(self.sid, reason))

    def _on_reply(self, msg: PairingMessage) -> bytes:
        host_share, box = msg.body[: cpace.POINT_SIZE], msg.body[cpace.POINT_SIZE :]
        try:
            k = cpace.shared_point(self._scalar, host_share)
        except PairingError:
            self.failed = True
            raise PairingFailed(cpace.INVALID_POINT) from None
        self._keys = _derive_keys(cpace.intermediate_session_key(self.sid, k, self._share,
                                                                 host_share))
        plain = _open(self._keys.host_to_client, _NONCE_FIRST, msg.prefix, box)
        if plain is None:
            # Wrong code on one side, or someone in the middle: tell the host.
            raise self._fail(REASON_WRONG_CODE)
        try:
            host_key, host_name = _unpack_peer(plain)
        except PairingError:
            self.failed = True
            raise PairingFailed(MALFORMED) from None
        self._host = PairingResult(host_key, host_name)
        self._reply_body = bytes(msg.body)
        sealed = _seal(self._keys.client_to_host, _NONCE_FIRST,
                       PREFIX.pack(KIND_CONFIRM, VERSION, self.sid),
                       _pack_peer(self.identity.public_key, self.name))
        self._confirm = bytes(PairingMessage(KIND_CONFIRM, self.sid, sealed))
        return self._confirm

    def _on_done(self, msg: PairingMessage) -> None:
        if _open(self._keys.host_to_client, _NONCE_SECOND, msg.prefix, msg.body) is None:
            self.failed = True
            raise PairingFailed(CONFIRMATION_FAILED)
        self.result = self._host
        return None


# -- host --------------------------------------------------------------------


@dataclass
class _HostExchange:
    start: bytes
    reply: bytes
    keys: _Keys
    done: bytes | None = None
    confirm: bytes | None = None
    failed: bool = False


class PairingHost:
    """The side that shows the code.  Feed every pairing message to
    ``receive(data, now)``; send back what it returns, or ``exc.reply`` when it
    raises PairingFailed.  When ``burned`` or ``expired`` becomes true, show a
    new code (a new PairingHost).  ``now`` is ``time.monotonic()`` seconds."""

    MAX_EXCHANGES = 8  # bounded memory: at most max_tries are ever answered
    START_KIND = KIND_START
    CHANNEL = cpace.CHANNEL_ID
    # A pairing code pairs once.  A room code admits guest after guest: a
    # confirmed exchange gives its try back, so only wrong codes burn it.
    REUSABLE = False

    def __init__(self, identity: Identity, code: str, now: float, *,
                 name: str | None = None,
                 max_tries: int = 3, min_interval: float = 1.0, lifetime: float = 300.0,
                 _scalar: bytes | None = None):
        self.identity = identity
        self._fixed_scalar = _scalar  # test vectors only
        self.name = check_peer_name(name if name is not None else default_peer_name())
        self._code = normalise_code(code).encode("ascii")
        self.created = now
        self.tries_left = max_tries
        self.min_interval = min_interval
        self.lifetime = lifetime
        self._last_attempt: float | None = None
        self._exchanges: dict[bytes, _HostExchange] = {}
        self.result: PairingResult | None = None

    @property
    def burned(self) -> bool:
        """No tries left and no answered exchange that could still succeed."""
        pending = any(not x.failed and x.done is None for x in self._exchanges.values())
        done = self.result is not None and not self.REUSABLE
        return not done and self.tries_left == 0 and not pending

    def expired(self, now: float) -> bool:
        return now - self.created >= self.lifetime

    def receive(self, data: bytes, now: float) -> bytes | None:
        msg = PairingMessage.parse(data)
        if msg.kind == self.START_KIND:
            return self._on_start(msg, bytes(data), now)
        exchange = self._exchanges.get(msg.sid)
        if exchange is None:
            raise PairingError(UNKNOWN_EXCHANGE)
        if msg.kind == KIND_CONFIRM:
            return self._on_confirm(exchange, msg, bytes(data))
        if msg.kind == KIND_REJECT and not exchange.failed and exchange.done is None:
            exchange.failed = True
            raise _failed(msg.body[0], None)
        raise PairingError("pairing message arrived out of order")

    def _on_start(self, msg: PairingMessage, data: bytes, now: float) -> bytes:
        known = self._exchanges.get(msg.sid)
        if known is not None:
            if known.start == data and not known.failed:
                return known.reply  # our REPLY was lost: resend it, no new try
            raise PairingError(UNKNOWN_EXCHANGE)
        reason = None
        if (self.result is not None and not self.REUSABLE) or self.expired(now):
            reason = REASON_EXPIRED
        elif self.tries_left == 0:
            reason = REASON_BURNED
        elif self._last_attempt is not None and now - self._last_attempt < self.min_interval:
            reason = REASON_RATE_LIMITED
        if reason is not None:
            # 19 bytes in answer to 50: a refusal can never amplify.
            raise _failed(reason, reject_message(msg.sid, reason))
        if len(self._exchanges) >= self.MAX_EXCHANGES and self.REUSABLE:
            # Finished guests' exchanges go first; one still open stays.
            for sid in [s for s, x in self._exchanges.items() if x.failed or x.done]:
                del self._exchanges[sid]
        if len(self._exchanges) >= self.MAX_EXCHANGES:
            raise PairingError("too many pairing exchanges")
        client_share = msg.body
        # Check the point before any scalar multiplication: junk costs no try and little CPU.
        if not nacl.bindings.crypto_core_ed25519_is_valid_point(client_share):
            raise PairingError(cpace.INVALID_POINT)
        scalar = self._fixed_scalar or cpace.random_scalar()
        host_share = cpace.public_share(scalar,
                                        cpace.generator(self._code, msg.sid, self.CHANNEL))
        k = cpace.shared_point(scalar, client_share)
        keys = _derive_keys(cpace.intermediate_session_key(msg.sid, k, client_share, host_share))
        self.tries_left -= 1
        self._last_attempt = now
        sealed = _seal(keys.host_to_client, _NONCE_FIRST,
                       PREFIX.pack(KIND_REPLY, VERSION, msg.sid),
                       _pack_peer(self.identity.public_key, self.name))
        reply = bytes(PairingMessage(KIND_REPLY, msg.sid, host_share + sealed))
        self._exchanges[msg.sid] = _HostExchange(start=data, reply=reply, keys=keys)
        return reply

    def _on_confirm(self, exchange: _HostExchange, msg: PairingMessage, data: bytes) -> bytes:
        if exchange.done is not None:
            if exchange.confirm == data:
                return exchange.done  # our DONE was lost: resend it
            raise PairingError("pairing message arrived out of order")
        if exchange.failed:
            raise PairingError("pairing message arrived out of order")
        plain = _open(exchange.keys.client_to_host, _NONCE_FIRST, msg.prefix, msg.body)
        if plain is None:
            exchange.failed = True
            raise _failed(REASON_WRONG_CODE, reject_message(msg.sid, REASON_WRONG_CODE))
        try:
            client_key, client_name = _unpack_peer(plain)
        except PairingError:
            exchange.failed = True
            raise PairingFailed(
                MALFORMED, reply=reject_message(msg.sid, REASON_WRONG_CODE)
            ) from None
        self.result = PairingResult(client_key, client_name)
        if self.REUSABLE:
            self.tries_left += 1  # the code was right: this try was no guess
        exchange.confirm = data
        exchange.done = bytes(PairingMessage(
            KIND_DONE, msg.sid,
            _seal(exchange.keys.host_to_client, _NONCE_SECOND,
                  PREFIX.pack(KIND_DONE, VERSION, msg.sid), b"")))
        return exchange.done
