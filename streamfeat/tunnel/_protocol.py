"""The tunnel connection: a state machine that turns bytes into events and events into bytes.

Theory of operation
-------------------
Like ``h11.Connection``, :class:`TunnelConnection` does no I/O. The shell feeds received
bytes with :meth:`receive_data` (``b""`` means the transport ended), pulls events with
:meth:`next_event` until it returns ``NEED_DATA``, sends with :meth:`send` (which returns
the bytes to write), and after every drain writes :meth:`data_to_send` (bytes the
connection produced by itself: the close record after a peer's mistake).

Every move is one entry of ``_TRANSITIONS`` below: ``(role, state, input) -> new state``.
Inputs are ``"send <Event>"`` for what we do and ``"recv <RECORD or MESSAGE>"`` for what
the peer did. The rules:

* A pair that is not in the table is illegal. An illegal *send* raises
  :class:`LocalProtocolError` and moves to ERROR (our bug; the connection is unusable).
  An illegal *recv* closes: state CLOSED, a :class:`Closed` event with
  ``CloseCode.PROTOCOL_ERROR`` (``remote=False``), and a close record for the peer.
* A record that is allowed but bad (does not decrypt, replayed or reordered counter,
  malformed) closes the same way with its own code; ``conn.error`` keeps the exception.
* In HELLO_RECEIVED the endpoint must decide (Accept or Refuse) before any further bytes
  are parsed, so ``next_event`` returns ``NEED_DATA`` there.
* CLOSED is final; further bytes are ignored, ``next_event`` repeats the Closed event,
  ``send(Close())`` is a no-op.

Randomness (ephemeral keys) comes in as ``random_bytes``; nothing reads a clock.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

import streamfeat.tunnel._frames as F
from streamfeat.errors import (
    DecryptError,
    HandshakeError,
    LocalProtocolError,
    RemoteProtocolError,
    TunnelError,
)
from streamfeat.tunnel._crypto import MAX_NONCE, CipherState, KeyPair, nonce
from streamfeat.tunnel._events import (
    NEED_DATA,
    Accept,
    Ack,
    Batch,
    Close,
    CloseCode,
    Closed,
    Config,
    DeviceHello,
    Event,
    HandshakeComplete,
    Hello,
    NeedData,
    Refuse,
    check_fields,
)
from streamfeat.tunnel._handshake import PROTOCOL_NAME, HandshakeState

__all__ = ["PROLOGUE", "Role", "State", "TunnelConnection"]

PROLOGUE = b"streamfeat-tunnel/1"
_T = TypeVar("_T")


class Role(StrEnum):
    """Which side of the tunnel."""

    DEVICE = "device"  # Noise initiator
    ENDPOINT = "endpoint"  # Noise responder


class State(StrEnum):
    """Connection states."""

    IDLE = "IDLE"
    HELLO_SENT = "HELLO_SENT"
    HELLO_RECEIVED = "HELLO_RECEIVED"
    OPEN = "OPEN"
    CLOSED = "CLOSED"
    ERROR = "ERROR"


D, E = Role.DEVICE, Role.ENDPOINT
S = State

# ---- the one transition table -----------------------------------------------------------
_TRANSITIONS: dict[tuple[Role, State, str], State] = {
    # device
    (D, S.IDLE, "send Hello"): S.HELLO_SENT,
    (D, S.IDLE, "send Close"): S.CLOSED,
    (D, S.HELLO_SENT, "recv WELCOME"): S.OPEN,
    (D, S.HELLO_SENT, "recv REFUSE"): S.CLOSED,
    (D, S.HELLO_SENT, "send Close"): S.CLOSED,
    (D, S.OPEN, "send Batch"): S.OPEN,
    (D, S.OPEN, "recv ACK"): S.OPEN,
    (D, S.OPEN, "recv CONFIG"): S.OPEN,
    (D, S.OPEN, "recv CLOSE"): S.CLOSED,
    (D, S.OPEN, "send Close"): S.CLOSED,
    # endpoint
    (E, S.IDLE, "recv HELLO"): S.HELLO_RECEIVED,
    (E, S.IDLE, "send Close"): S.CLOSED,
    (E, S.HELLO_RECEIVED, "send Accept"): S.OPEN,
    (E, S.HELLO_RECEIVED, "send Refuse"): S.CLOSED,
    (E, S.HELLO_RECEIVED, "send Close"): S.CLOSED,
    (E, S.OPEN, "recv BATCH"): S.OPEN,
    (E, S.OPEN, "send Ack"): S.OPEN,
    (E, S.OPEN, "send Config"): S.OPEN,
    (E, S.OPEN, "recv CLOSE"): S.CLOSED,
    (E, S.OPEN, "send Close"): S.CLOSED,
    # both: closing twice is harmless
    (D, S.CLOSED, "send Close"): S.CLOSED,
    (E, S.CLOSED, "send Close"): S.CLOSED,
}
# the transport ending is always legal: it closes (TRUNCATED when inside a record)
for _role in Role:
    for _state in (S.IDLE, S.HELLO_SENT, S.HELLO_RECEIVED, S.OPEN):
        _TRANSITIONS[(_role, _state, "recv EOF")] = S.CLOSED
# -----------------------------------------------------------------------------------------
# the same table split by role; StrEnum members hash like their strings (fast, in C)
_BY_ROLE = {
    r: {(st, inp): new for (rr, st, inp), new in _TRANSITIONS.items() if rr is r} for r in Role
}

_SEND_INPUTS: dict[type, str] = {
    t: f"send {t.__name__}" for t in (Hello, Accept, Refuse, Batch, Ack, Config, Close)
}
_RECORD_INPUTS = {F.HELLO: "recv HELLO", F.WELCOME: "recv WELCOME", F.REFUSE: "recv REFUSE"}
_INNER_INPUTS = {
    F.BATCH: "recv BATCH",
    F.ACK: "recv ACK",
    F.CONFIG: "recv CONFIG",
    F.CLOSE: "recv CLOSE",
}
_BATCH_BYTE, _ACK_BYTE = bytes((F.BATCH,)), bytes((F.ACK,))
_RECORD_HEADER = 3  # type u8 | length u16
_TAG = 16
_TRIALS = 32  # nonces tried each way to tell a replay or a reorder from tampering


class _Refusal(Exception):
    """Internal: a peer mistake that closes the connection with ``code``."""

    def __init__(self, code: CloseCode, cause: Exception) -> None:
        super().__init__(str(cause))
        self.code = code
        self.cause = cause


class TunnelConnection:
    """One end of a tunnel connection, with no I/O.

    Args:
        role: DEVICE (initiator) or ENDPOINT (responder).
        static: our long-term key pair.
        remote_static: the endpoint's pinned public key (device only).
        random_bytes: source of randomness for ephemeral keys (``os.urandom``).
        prologue: bound into the handshake; both sides must use the same.
    """

    def __init__(
        self,
        role: Role,
        *,
        static: KeyPair,
        remote_static: bytes | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
        prologue: bytes = PROLOGUE,
        protocol_name: bytes = PROTOCOL_NAME,
    ) -> None:
        if role is Role.DEVICE and remote_static is None:
            msg = "a device connection needs the endpoint's public key (remote_static)"
            raise ValueError(msg)
        self.role = role
        self._table = _BY_ROLE[role]
        self.state = State.IDLE
        self.error: TunnelError | None = None
        self.peer_key: bytes | None = None
        self.config_version = 0  # endpoint side: what the device said it holds
        self._static, self._remote_static = static, remote_static
        self._random, self._prologue, self._protocol = random_bytes, prologue, protocol_name
        self._hs: HandshakeState | None = None
        self._send_cs: CipherState | None = None
        self._recv_cs: CipherState | None = None
        # their AEAD objects, called directly per frame (set with the keys, in _split)
        self._seal_with: ChaCha20Poly1305 | None = None
        self._open_with: ChaCha20Poly1305 | None = None
        self._send_n = 0
        self._recv_n = 0
        self._buf = F.Buffer()
        self._eof = False
        self._events: deque[Event] = deque()
        self._early: Batch | None = None
        self._out = bytearray()
        self._closed: Closed | None = None
        # batch ids of this connection not acknowledged yet, oldest first: sent ones on the
        # device, received ones on the endpoint; ACK n on the wire means "the first n"
        self._unacked: deque[bytes] = deque()
        self._acked = 0

    def __repr__(self) -> str:
        return f"<TunnelConnection {self.role.value} {self.state.value}>"

    # ---- transitions ----------------------------------------------------------------------

    def _move(self, inp: str) -> None:
        new = self._table.get((self.state, inp))
        if new is None:
            if inp.startswith("send"):
                old, self.state = self.state, State.ERROR
                msg = f"can't {inp} in state {old.value} as {self.role.value}"
                raise LocalProtocolError(msg, close_code=CloseCode.PROTOCOL_ERROR)
            msg = f"peer sent {inp.removeprefix('recv ')} in state {self.state.value} as {self.role.value}"
            raise _Refusal(
                CloseCode.PROTOCOL_ERROR,
                RemoteProtocolError(msg, close_code=CloseCode.PROTOCOL_ERROR),
            )
        self.state = new

    # ---- sending -----------------------------------------------------------------------

    def send(self, event: Hello | Accept | Refuse | Batch | Ack | Config | Close) -> bytes:
        """Apply a local event and return the bytes to write.

        Raises:
            LocalProtocolError: the event is not allowed in this state (state becomes
                ERROR), or its fields are out of range (state unchanged).
        """
        if self.state is State.OPEN:
            # the hot events, straight to the wire: a device's batch, an endpoint's in-order ack
            # (the same checks and bytes as the general path below, without its dispatch)
            if type(event) is Batch and self.role is Role.DEVICE:
                return self._send_batch(event)
            if (
                type(event) is Ack
                and self.role is Role.ENDPOINT
                and self._unacked
                and self._unacked[0] == event.batch_id
            ):
                self._unacked.popleft()
                self._acked += 1
                return self._seal_plain(_ACK_BYTE + F.uvarint(self._acked))
        if self.state is State.ERROR:
            msg = f"can't send {type(event).__name__} in state ERROR"
            raise LocalProtocolError(msg)
        check_fields(event)
        if self.state is State.OPEN:
            self._check_ack(event)
        before = self.state
        self._move(_SEND_INPUTS.get(type(event), f"send {type(event).__name__}"))
        # the hot events first
        if isinstance(event, Batch):
            self._unacked.append(event.batch_id)
            return self._seal(F.Inner(F.BATCH, batch_id=event.batch_id, payload=event.payload))
        if isinstance(event, Ack):
            return self._seal(F.Inner(F.ACK, version=self._take_acked(event.batch_id)))
        if isinstance(event, Config):
            return self._seal(F.Inner(F.CONFIG, version=event.version, payload=event.body))
        if isinstance(event, Hello):
            return self._send_hello(event)
        if isinstance(event, Accept):
            return self._send_accept()
        if isinstance(event, Refuse):
            self._set_closed(Closed(event.code, event.reason, remote=False))
            return F.encode_record(F.REFUSE, F.encode_refuse(event.code, event.reason))
        return self._send_close(before, event)

    def _send_batch(self, event: Batch) -> bytes:
        """Device, state OPEN: seal one batch."""
        bid, payload = event.batch_id, event.payload
        if len(bid) != F.BATCH_ID_LEN or len(payload) > F.MAX_BATCH:
            check_fields(event)  # raises, naming the field
        self._unacked.append(bid)
        return self._seal_plain(_BATCH_BYTE + bid + payload)

    def _take_acked(self, batch_id: bytes) -> int:
        """Endpoint: mark batches up to ``batch_id`` acknowledged; the cumulative count."""
        while self._unacked:
            self._acked += 1
            if self._unacked.popleft() == batch_id:
                return self._acked
        msg = "checked in _check_ack"
        raise AssertionError(msg)  # pragma: no cover

    def _check_ack(self, event: object) -> None:
        if (
            isinstance(event, Ack)
            and self.role is Role.ENDPOINT
            and event.batch_id not in self._unacked
        ):
            msg = f"can't ack batch {event.batch_id.hex()}: not received unacknowledged on this connection"
            raise LocalProtocolError(msg)

    def _send_hello(self, event: Hello) -> bytes:
        self._hs = HandshakeState(
            initiator=True,
            s=self._static,
            e=KeyPair.generate(self._random),
            rs=self._remote_static,
            prologue=self._prologue,
            protocol_name=self._protocol,
        )
        first = None
        if event.first is not None:
            first = F.Inner(F.BATCH, batch_id=event.first.batch_id, payload=event.first.payload)
            self._unacked.append(event.first.batch_id)
        payload = F.encode_hello_payload(event.config_version, first)
        return F.encode_record(F.HELLO, self._hs.write_message_1(payload))

    def _send_accept(self) -> bytes:
        assert self._hs is not None  # set when HELLO was read
        # the responder's ephemeral is generated only now, after the shell said yes
        self._hs.e = KeyPair.generate(self._random)
        body = self._hs.write_message_2(b"")
        self._split(self._hs)
        self.peer_key = self._hs.rs
        assert self.peer_key is not None
        self._events.append(HandshakeComplete(self.peer_key, self._hs.handshake_hash))
        if self._early is not None:
            self._events.append(self._early)
            self._unacked.append(self._early.batch_id)
            self._early = None
        return F.encode_record(F.WELCOME, body)

    def _send_close(self, before: State, event: Close) -> bytes:
        if before is State.CLOSED:
            return b""
        self._set_closed(Closed(event.code, event.reason, remote=False))
        if before is State.OPEN:
            return self._seal(F.Inner(F.CLOSE, code=event.code, reason=event.reason))
        if before is State.HELLO_RECEIVED:
            return F.encode_record(F.REFUSE, F.encode_refuse(event.code, event.reason))
        return b""  # no keys yet and nothing the peer could verify: just hang up

    def _seal(self, inner: F.Inner) -> bytes:
        return self._seal_plain(F.encode_inner(inner))

    def _seal_plain(self, plain: bytes) -> bytes:
        """One DATA record: ``plain`` (an encoded inner message) sealed at the next nonce."""
        aead, n = self._seal_with, self._send_n
        if aead is None or n >= MAX_NONCE:
            msg = f"can't encrypt with nonce {n} (no key or nonce spent)"
            raise DecryptError(msg)
        ct = aead.encrypt(nonce(n), plain, b"")
        self._send_n = n + 1
        return F.encode_record(F.DATA, ct)

    def _split(self, hs: HandshakeState) -> None:
        """The handshake is done: the transport keys, and their AEAD objects."""
        self._send_cs, self._recv_cs = hs.split()
        self._seal_with, self._open_with = self._send_cs.aead, self._recv_cs.aead

    def data_to_send(self) -> bytes:
        """Bytes the connection produced by itself (a close record); empty most of the time."""
        if not self._out:
            return b""
        out = bytes(self._out)
        self._out.clear()
        return out

    # ---- receiving ---------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed received bytes; ``b""`` means the transport ended (EOF).

        Raises:
            LocalProtocolError: data after EOF was fed.
        """
        if self._eof and data:
            msg = f"can't receive data after eof in state {self.state.value}"
            raise LocalProtocolError(msg)
        if not data:
            self._eof = True
        elif self.state is not State.CLOSED:
            self._buf.feed(data)

    @property
    def pending_bytes(self) -> int:
        """Received bytes not yet parsed (part of a record, or held while paused)."""
        return len(self._buf)

    def next_event(self) -> Event | NeedData:
        """Return the next event, or ``NEED_DATA``.

        Raises:
            LocalProtocolError: called in state ERROR.
        """
        if self._events:
            return self._events.popleft()
        if self.state is State.ERROR:
            msg = "can't read events in state ERROR"
            raise LocalProtocolError(msg)
        if self.state is State.CLOSED:
            assert self._closed is not None
            return self._closed
        if self.state is State.HELLO_RECEIVED:
            return NEED_DATA  # paused until the shell sends Accept or Refuse
        if not self._eof and len(self._buf) < _RECORD_HEADER:
            return NEED_DATA  # not even a record header: nothing to parse
        try:
            ev = self._step()
        except _Refusal as r:
            self._refuse(r)
            ev = None
        if ev is not None:
            return ev
        return self._events.popleft() if self._events else NEED_DATA

    def _on_record(self, rtype: int, body: bytes) -> None:
        """A plaintext record (HELLO, WELCOME, REFUSE)."""
        self._move(_RECORD_INPUTS[rtype])
        if rtype == F.HELLO:
            self._on_hello(body)
        elif rtype == F.WELCOME:
            self._on_welcome(body)
        else:
            code, reason = _decode(F.decode_refuse, body)
            self._set_closed(Closed(code, reason, remote=True))

    def _step(self) -> Batch | Ack | None:
        """Parse one record. The common events (a batch on the endpoint, the ack of the oldest
        batch in flight on the device) come back directly; all others go to the queue."""
        try:
            rec = self._buf.next_record()
        except RemoteProtocolError as exc:
            raise _Refusal(CloseCode.PROTOCOL_ERROR, exc) from exc
        if rec is None:
            if self._eof:
                self._on_eof()
            return None
        rtype, body = rec
        if rtype != F.DATA:
            self._on_record(rtype, body)
            return None
        plain = self._open_plain(body)
        kind = plain[0] if plain and self.state is State.OPEN else -1
        if kind == F.BATCH and self.role is Role.ENDPOINT and len(plain) > F.BATCH_ID_LEN:
            bid = plain[1 : 1 + F.BATCH_ID_LEN]
            self._unacked.append(bid)
            return Batch(bid, plain[1 + F.BATCH_ID_LEN :])
        if (
            kind == F.ACK
            and self.role is Role.DEVICE
            and self._unacked
            and F.ack_count(plain) == self._acked + 1
        ):
            self._acked += 1
            return Ack(self._unacked.popleft())
        inner = _decode(F.decode_inner, plain)
        self._move(_INNER_INPUTS[inner.kind])
        self._on_inner(inner)
        return None

    def _on_eof(self) -> None:
        partial = len(self._buf) > 0
        self._move("recv EOF")
        if partial:
            msg = f"stream ended inside a record ({len(self._buf)} bytes pending)"
            # nobody is left to tell: no close record
            self.error = RemoteProtocolError(msg, close_code=CloseCode.TRUNCATED)
            self._set_closed(Closed(CloseCode.TRUNCATED, msg, remote=False))
        else:
            self._set_closed(Closed(CloseCode.ABNORMAL, "transport ended", remote=True))

    def _on_hello(self, body: bytes) -> None:
        self._hs = HandshakeState(
            initiator=False,
            s=self._static,
            e=self._static,  # e replaced at Accept
            prologue=self._prologue,
            protocol_name=self._protocol,
        )
        try:
            payload = self._hs.read_message_1(body)
        except HandshakeError as exc:
            raise _Refusal(CloseCode.HANDSHAKE_FAILED, exc) from exc
        version, first = _decode(F.decode_hello_payload, payload)
        assert self._hs.rs is not None
        assert self._hs.re is not None
        self.config_version = version
        if first is not None:
            self._early = Batch(first.batch_id, first.payload, early=True)
        self._events.append(DeviceHello(self._hs.rs, self._hs.re, version, first is not None))

    def _on_welcome(self, body: bytes) -> None:
        assert self._hs is not None
        try:
            self._hs.read_message_2(body)
        except HandshakeError as exc:
            raise _Refusal(CloseCode.HANDSHAKE_FAILED, exc) from exc
        self._split(self._hs)
        self.peer_key = self._remote_static
        assert self.peer_key is not None
        self._events.append(HandshakeComplete(self.peer_key, self._hs.handshake_hash))

    def _open_plain(self, body: bytes) -> bytes:
        """Decrypt a DATA record's body at the next nonce."""
        aead = self._open_with
        if aead is None:
            msg = f"peer sent DATA in state {self.state.value} as {self.role.value}"
            raise _Refusal(CloseCode.PROTOCOL_ERROR, RemoteProtocolError(msg))
        if len(body) < _TAG + 1:
            msg = f"data record of {len(body)} bytes is shorter than a message and its tag"
            raise _Refusal(CloseCode.TRUNCATED, RemoteProtocolError(msg))
        n = self._recv_n
        try:
            if n >= MAX_NONCE:
                raise InvalidTag  # the key is spent (never in practice: 2**64 frames)
            plain = aead.decrypt(nonce(n), body, b"")
        except InvalidTag as exc:
            msg = f"aead tag did not verify at nonce {n}"
            raise _Refusal(self._classify(body), DecryptError(msg)) from exc
        self._recv_n = n + 1
        return plain

    def _classify(self, body: bytes) -> CloseCode:
        """Why a frame failed: it opens at an earlier nonce (replay), a later one (reorder or
        loss), or none near (tampered). Only on the error path; bounded by ``_TRIALS``."""
        assert self._recv_cs is not None
        n = self._recv_n
        for code, nonces in (
            (CloseCode.REPLAYED_FRAME, range(n - 1, max(-1, n - 1 - _TRIALS), -1)),
            (CloseCode.REORDERED_FRAME, range(n + 1, n + 1 + _TRIALS)),
        ):
            for k in nonces:
                try:
                    self._recv_cs.decrypt_at(k, b"", body)
                except DecryptError:
                    continue
                return code
        return CloseCode.DECRYPT_FAILED

    def _on_ack(self, count: int) -> None:
        """Device: a cumulative ack of the first ``count`` batches of this connection."""
        if not self._acked < count <= self._acked + len(self._unacked):
            msg = f"ack of {count} batches, {self._acked} acked and {len(self._unacked)} in flight"
            raise _Refusal(CloseCode.PROTOCOL_ERROR, RemoteProtocolError(msg))
        while self._acked < count:
            self._acked += 1
            self._events.append(Ack(self._unacked.popleft()))

    def _on_inner(self, inner: F.Inner) -> None:
        if inner.kind == F.BATCH:
            self._events.append(Batch(inner.batch_id, inner.payload))
            self._unacked.append(inner.batch_id)
        elif inner.kind == F.ACK:
            self._on_ack(inner.version)
        elif inner.kind == F.CONFIG:
            self._events.append(Config(inner.version, inner.payload))
        else:
            self._set_closed(Closed(inner.code, inner.reason, remote=True))

    # ---- closing -----------------------------------------------------------------------

    def _set_closed(self, closed: Closed) -> None:
        self.state = State.CLOSED
        self._closed = closed
        self._events.append(closed)
        self._buf = F.Buffer()  # nothing after a close is ever parsed

    def _refuse(self, r: _Refusal) -> None:
        """Close because the peer misbehaved, queueing a close record for it if we can."""
        before = self.state
        err = r.cause if isinstance(r.cause, TunnelError) else RemoteProtocolError(str(r.cause))
        err.close_code = r.code
        self.error = err
        reason = r.code.reason
        if before is State.OPEN and self._send_cs is not None:
            self._out += self._seal(F.Inner(F.CLOSE, code=r.code, reason=reason))
        elif self.role is Role.ENDPOINT and before in (State.IDLE, State.HELLO_RECEIVED):
            self._out += F.encode_record(F.REFUSE, F.encode_refuse(r.code, reason))
        self._set_closed(Closed(r.code, str(r), remote=False))


def _decode(fn: Callable[[bytes], _T], data: bytes) -> _T:
    try:
        return fn(data)
    except RemoteProtocolError as exc:
        raise _Refusal(CloseCode.PROTOCOL_ERROR, exc) from exc
