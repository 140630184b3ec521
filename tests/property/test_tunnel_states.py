"""Every (role, state, input) of TunnelConnection moves legally or closes with an error.

The reference is the plain list of legal moves below, written from the protocol description
(not imported from the implementation); Hypothesis drives random walks over both ends.
"""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from streamfeat.errors import LocalProtocolError
from streamfeat.tunnel import (
    NEED_DATA,
    Accept,
    Ack,
    Batch,
    Close,
    CloseCode,
    Closed,
    Config,
    DeviceHello,
    HandshakeComplete,
    Hello,
    Refuse,
    Role,
    State,
    TunnelConnection,
)
from tests.unit.tunnel.tunnel_helpers import DEVICE, ENDPOINT, bid, det_random, drain

LEGAL_SENDS = {
    (Role.DEVICE, State.IDLE): {"Hello": State.HELLO_SENT, "Close": State.CLOSED},
    (Role.DEVICE, State.HELLO_SENT): {"Close": State.CLOSED},
    (Role.DEVICE, State.OPEN): {"Batch": State.OPEN, "Close": State.CLOSED},
    (Role.DEVICE, State.CLOSED): {"Close": State.CLOSED},
    (Role.ENDPOINT, State.IDLE): {"Close": State.CLOSED},
    (Role.ENDPOINT, State.HELLO_RECEIVED): {
        "Accept": State.OPEN,
        "Refuse": State.CLOSED,
        "Close": State.CLOSED,
    },
    (Role.ENDPOINT, State.OPEN): {"Ack": State.OPEN, "Config": State.OPEN, "Close": State.CLOSED},
    (Role.ENDPOINT, State.CLOSED): {"Close": State.CLOSED},
}
SENDABLE = {
    "Hello": Hello(0, None),
    "Accept": Accept(),
    "Refuse": Refuse(CloseCode.UNKNOWN_DEVICE),
    "Batch": Batch(bid(1), b"p"),
    "Ack": Ack(bid(1)),
    "Config": Config(1, b"c"),
    "Close": Close(),
}


def fresh(role: Role, seed: str = "s") -> TunnelConnection:
    if role is Role.DEVICE:
        return TunnelConnection(
            role, static=DEVICE, remote_static=ENDPOINT.public, random_bytes=det_random(seed + "d")
        )
    return TunnelConnection(role, static=ENDPOINT, random_bytes=det_random(seed + "e"))


def reach(role: Role, state: State) -> tuple[TunnelConnection, TunnelConnection]:
    """(conn in `state`, its peer) built by the shortest legal path."""
    d, e = fresh(Role.DEVICE), fresh(Role.ENDPOINT)
    if state is not State.IDLE:
        e.receive_data(d.send(Hello()))
        drain(e)
        if state is not State.HELLO_RECEIVED or role is Role.DEVICE:
            d.receive_data(e.send(Accept()))
            drain(e)
            drain(d)
            # one batch in flight, so that an Ack is a legal thing to send or receive
            e.receive_data(d.send(Batch(bid(1), b"p")))
            drain(e)
    if state is State.CLOSED:
        (d if role is Role.DEVICE else e).send(Close())
    conn, peer = (d, e) if role is Role.DEVICE else (e, d)
    assert conn.state is state or (role is Role.DEVICE and state is State.HELLO_SENT), (
        role,
        state,
        conn.state,
    )
    return conn, peer


STATES = {
    Role.DEVICE: [State.IDLE, State.OPEN, State.CLOSED],
    Role.ENDPOINT: [State.IDLE, State.HELLO_RECEIVED, State.OPEN, State.CLOSED],
}


@given(
    role=st.sampled_from(list(Role)),
    data=st.data(),
    name=st.sampled_from(sorted(SENDABLE)),
)
def test_every_send_is_legal_or_raises_and_errors(
    role: Role, data: st.DataObject, name: str
) -> None:
    state = data.draw(st.sampled_from(STATES[role]))
    conn, _ = reach(role, state)
    legal = LEGAL_SENDS.get((role, state), {})
    if name in legal:
        conn.send(SENDABLE[name])
        assert conn.state is legal[name]
    else:
        with pytest.raises(LocalProtocolError) as info:
            conn.send(SENDABLE[name])
        assert conn.state is State.ERROR
        assert info.value.close_code == CloseCode.PROTOCOL_ERROR


def peer_records(role: Role) -> dict[str, bytes]:
    """One valid-looking record of every kind a peer could send, keyed by input name."""
    d, e = fresh(Role.DEVICE, "p"), fresh(Role.ENDPOINT, "p")
    hello = d.send(Hello())
    e.receive_data(hello)
    drain(e)
    welcome = e.send(Accept())
    drain(e)
    d.receive_data(welcome)
    drain(d)
    from streamfeat.tunnel import _frames as F

    refuse = F.encode_record(F.REFUSE, F.encode_refuse(CloseCode.UNKNOWN_DEVICE, "x"))
    return {
        "HELLO": hello,
        "WELCOME": welcome,
        "REFUSE": refuse,
        "DATA": d.send(Batch(bid(1), b"x")),
    }


LEGAL_RECV = {
    (Role.DEVICE, State.HELLO_SENT): {"WELCOME", "REFUSE"},
    (Role.DEVICE, State.OPEN): {"DATA_ACK", "DATA_CONFIG", "DATA_CLOSE"},
    (Role.ENDPOINT, State.IDLE): {"HELLO"},
    (Role.ENDPOINT, State.OPEN): {"DATA_BATCH", "DATA_CLOSE"},
}


@settings(max_examples=60)
@given(role=st.sampled_from(list(Role)), data=st.data())
def test_every_received_record_is_legal_or_closes(role: Role, data: st.DataObject) -> None:
    state = data.draw(
        st.sampled_from(
            [State.IDLE, State.HELLO_SENT, State.OPEN]
            if role is Role.DEVICE
            else [State.IDLE, State.OPEN]
        )
    )
    if role is Role.DEVICE and state is State.HELLO_SENT:
        conn, peer = fresh(Role.DEVICE), fresh(Role.ENDPOINT)
        peer.receive_data(conn.send(Hello()))
        drain(peer)
    else:
        conn, peer = reach(role, state)
    names = ["HELLO", "WELCOME", "REFUSE"]
    if state is State.OPEN:
        names += ["DATA_BATCH", "DATA_ACK", "DATA_CONFIG", "DATA_CLOSE"]
    name = data.draw(st.sampled_from(names))
    if name.startswith("DATA_"):
        kind = name.removeprefix("DATA_")
        # a correctly encrypted frame from the real peer, of any kind (sent via a shadow
        # connection in the peer's role so that even illegal kinds are well formed)
        frame = shadow_frame(peer, kind)
    elif name == "WELCOME" and role is Role.DEVICE and state is State.HELLO_SENT:
        frame = peer.send(Accept())
    else:
        frame = peer_records(role)[name]
    conn.receive_data(frame)
    events = drain(conn)
    legal = name in LEGAL_RECV.get((role, state), set())
    if legal:
        assert conn.state is not State.ERROR
        assert not (events and isinstance(events[-1], Closed) and not events[-1].remote), (
            name,
            events,
        )
    else:
        assert conn.state is State.CLOSED, (role, state, name, conn.state)
        assert isinstance(events[-1], Closed)
        assert not events[-1].remote
        assert events[-1].code in (
            CloseCode.PROTOCOL_ERROR,
            CloseCode.HANDSHAKE_FAILED,
            CloseCode.DECRYPT_FAILED,
        )


def shadow_frame(peer: TunnelConnection, kind: str) -> bytes:
    """A DATA frame from ``peer`` carrying ``kind``, even one the peer may not send."""
    from streamfeat.tunnel import _frames as F

    inner = {
        "BATCH": F.Inner(F.BATCH, batch_id=bid(1), payload=b"x"),
        "ACK": F.Inner(F.ACK, version=1),
        "CONFIG": F.Inner(F.CONFIG, version=1, payload=b"c"),
        "CLOSE": F.Inner(F.CLOSE, code=1000, reason="bye"),
    }[kind]
    return peer._seal(inner)


class PairMachine(RuleBasedStateMachine):
    """Random interleavings of both ends, with bytes delivered in random chunks."""

    def __init__(self) -> None:
        super().__init__()
        self.d, self.e = fresh(Role.DEVICE, "m"), fresh(Role.ENDPOINT, "m")
        self.to_e = bytearray()
        self.to_d = bytearray()
        self.sent_batches: list[bytes] = []
        self.got_batches: list[bytes] = []
        self.sent_down: list[object] = []
        self.unacked: list[bytes] = []
        self.got_down: list[object] = []
        self.n = 0
        self.to_e += self.d.send(Hello(0, Batch(bid(0), b"early")))
        self.sent_batches.append(bid(0))

    def _pump_e(self) -> None:
        for ev in drain(self.e):
            if isinstance(ev, DeviceHello):
                self.to_d += self.e.send(Accept())
                self._pump_e()
                return
            if isinstance(ev, Batch):
                self.got_batches.append(ev.batch_id)
                self.unacked.append(ev.batch_id)

    def _pump_d(self) -> None:
        for ev in drain(self.d):
            if isinstance(ev, Ack | Config):
                self.got_down.append(ev)

    @rule(k=st.integers(1, 400))
    def deliver_to_endpoint(self, k: int) -> None:
        chunk, self.to_e[:] = bytes(self.to_e[:k]), self.to_e[k:]
        if chunk:
            self.e.receive_data(chunk)
        self._pump_e()

    @rule(k=st.integers(1, 400))
    def deliver_to_device(self, k: int) -> None:
        chunk, self.to_d[:] = bytes(self.to_d[:k]), self.to_d[k:]
        if chunk:
            self.d.receive_data(chunk)
        self._pump_d()

    @precondition(lambda self: self.d.state is State.OPEN)
    @rule(size=st.integers(0, 300))
    def device_sends_batch(self, size: int) -> None:
        self.n += 1
        self.to_e += self.d.send(Batch(bid(self.n), bytes(size)))
        self.sent_batches.append(bid(self.n))

    @precondition(lambda self: self.e.state is State.OPEN)
    @rule(version=st.integers(0, 2**32 - 1))
    def endpoint_sends_config(self, version: int) -> None:
        self.to_d += self.e.send(Config(version, b"v"))
        self.sent_down.append(Config(version, b"v"))

    @precondition(lambda self: self.e.state is State.OPEN and self.unacked)
    @rule(k=st.integers(0, 5))
    def endpoint_acks(self, k: int) -> None:
        # a cumulative ack: every batch up to the chosen one
        k = min(k, len(self.unacked) - 1)
        self.to_d += self.e.send(Ack(self.unacked[k]))
        self.sent_down += [Ack(b) for b in self.unacked[: k + 1]]
        del self.unacked[: k + 1]

    @invariant()
    def delivered_is_a_prefix_of_sent(self) -> None:
        assert self.got_batches == self.sent_batches[: len(self.got_batches)]
        assert self.got_down == self.sent_down[: len(self.got_down)]
        assert self.d.state is not State.ERROR
        assert self.e.state is not State.ERROR
        assert self.e.state is not State.CLOSED
        assert self.d.state is not State.CLOSED


TestPair = PairMachine.TestCase
TestPair.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


@given(st.binary(max_size=200), st.sampled_from(list(Role)))
def test_random_bytes_never_raise_they_close_or_wait(junk: bytes, role: Role) -> None:
    conn = fresh(role)
    if role is Role.DEVICE:
        conn.send(Hello())
    conn.receive_data(junk)
    events = drain(conn)
    assert conn.state in (State.IDLE, State.HELLO_SENT, State.CLOSED)
    if conn.state is State.CLOSED:
        assert isinstance(events[-1], Closed)
    else:
        assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    assert isinstance(drain(conn)[-1], Closed)
    assert conn.state is State.CLOSED
    assert not any(isinstance(e, HandshakeComplete) for e in events)
