"""The hot path of TunnelConnection (a device's batch, an endpoint's in-order ack, a batch or an
ack read back) gives the events of the protocol description, whatever the mix of in-order
acks (fast path) and cumulative acks that skip ahead (general path).

The reference is a plain model written here: the endpoint reads every batch in the order sent,
with its id and payload; an ack of batch k gives the device one Ack per batch up to k, oldest
first. Counts above 127 take two varint bytes on the wire; a one-byte count with the
continuation bit set is malformed and must close the connection.
"""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given, settings

from streamfeat.tunnel import Ack, Batch, CloseCode, Closed, State
from streamfeat.tunnel._frames import ACK, DATA, encode_record
from tests.unit.tunnel.tunnel_helpers import TunnelPair, bid

# an op: ("send", payload size) or ("ack", which batch in flight, counted from the oldest)
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(0, 300)),
        st.tuples(st.just("ack"), st.integers(0, 5)),
    ),
    max_size=80,
)


def _run(pair: TunnelPair, ops: list[tuple[str, int]], start: int = 0) -> int:
    """Apply ``ops``; check each step's events against the model. Returns the next batch id."""
    sent: list[bytes] = []  # received by the endpoint, not yet acknowledged, oldest first
    n = start
    for op, arg in ops:
        if op == "send":
            n += 1
            payload = bytes([n % 251]) * arg
            got = pair.to_endpoint(pair.device.send(Batch(bid(n), payload)))
            assert got == [Batch(bid(n), payload)]
            sent.append(bid(n))
        elif sent:
            k = min(arg, len(sent) - 1)
            got = pair.to_device(pair.endpoint.send(Ack(sent[k])))
            assert got == [Ack(b) for b in sent[: k + 1]]
            del sent[: k + 1]
    return n


@settings(max_examples=60, deadline=None)
@given(_OPS)
def test_batches_and_acks_match_the_model(ops: list[tuple[str, int]]) -> None:
    pair = TunnelPair("hot")
    pair.open()
    _run(pair, ops)
    assert pair.device.state is State.OPEN
    assert pair.endpoint.state is State.OPEN


def test_counts_past_one_varint_byte() -> None:
    pair = TunnelPair("long")
    pair.open()
    # 300 batches acked one by one: counts 128..300 take two bytes
    n = _run(pair, [("send", 10), ("ack", 0)] * 300)
    assert n == 300
    # and a cumulative ack across the boundary, through the general path
    _run(pair, [("send", 1)] * 5 + [("ack", 4)], start=n)
    assert pair.device.state is State.OPEN


def test_a_truncated_varint_count_closes_the_connection() -> None:
    pair = TunnelPair("trunc")
    pair.open()
    n = _run(pair, [("send", 1), ("ack", 0)] * 200)
    pair.to_endpoint(pair.device.send(Batch(bid(n + 1), b"x")))
    # the expected count is 201 = 0xC9: as a single byte its continuation bit is set, so the
    # message is a varint cut short, not the count 201
    ep = pair.endpoint
    assert ep._send_cs is not None
    bad = encode_record(DATA, ep._send_cs.encrypt_at(ep._send_n, b"", bytes((ACK, 0xC9))))
    got = pair.to_device(bad)
    assert len(got) == 1
    assert isinstance(got[0], Closed)
    assert got[0].code == CloseCode.PROTOCOL_ERROR
    assert pair.device.state is State.CLOSED
