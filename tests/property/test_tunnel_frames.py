"""Round trips of the wire format, and any split of the byte stream gives the same events."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given

from streamfeat.tunnel import (
    NEED_DATA,
    Accept,
    Batch,
    Closed,
    Config,
    DeviceHello,
    HandshakeComplete,
    Hello,
    Role,
    State,
    join_items,
    split_items,
)
from streamfeat.tunnel import _frames as F
from tests.unit.tunnel.tunnel_helpers import TunnelPair, bid, drain

ids = st.binary(min_size=16, max_size=16)
inners = st.one_of(
    st.builds(lambda i, p: F.Inner(F.BATCH, batch_id=i, payload=p), ids, st.binary(max_size=300)),
    st.builds(lambda n: F.Inner(F.ACK, version=n), st.integers(0, 2**63 - 1)),
    st.builds(
        lambda v, p: F.Inner(F.CONFIG, version=v, payload=p),
        st.integers(0, 2**32 - 1),
        st.binary(max_size=300),
    ),
    st.builds(
        lambda c, r: F.Inner(F.CLOSE, code=c, reason=r), st.integers(0, 65535), st.text(max_size=50)
    ),
)


@given(inners)
def test_inner_round_trip(m: F.Inner) -> None:
    assert F.decode_inner(F.encode_inner(m)) == m


@given(
    st.lists(
        st.tuples(st.sampled_from(sorted(F.RECORD_TYPES)), st.binary(max_size=600)), max_size=8
    ),
    st.data(),
)
def test_records_round_trip_through_any_split(
    records: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    stream = b"".join(F.encode_record(t, b) for t, b in records)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    buf, got, prev = F.Buffer(), [], 0
    for c in [*cuts, len(stream)]:
        buf.feed(stream[prev:c])
        prev = c
        while (r := buf.next_record()) is not None:
            got.append(r)
    assert got == records
    assert len(buf) == 0


@given(st.lists(st.binary(max_size=200), max_size=20))
def test_items_round_trip(items: list[bytes]) -> None:
    assert split_items(join_items(items)) == items


def _conversation(payloads: list[bytes], configs: list[bytes]) -> tuple[bytes, bytes]:
    p = TunnelPair("prop")
    up = p.hello(Batch(bid(0), b"first"))
    p.endpoint.receive_data(up)
    drain(p.endpoint)
    down = p.endpoint.send(Accept())
    drain(p.endpoint)
    p.device.receive_data(down)
    drain(p.device)
    up += b"".join(p.device.send(Batch(bid(i + 1), x)) for i, x in enumerate(payloads))
    down += b"".join(p.endpoint.send(Config(i, c)) for i, c in enumerate(configs))
    return up, down


def _feed(conn_role: Role, stream: bytes, cuts: list[int]) -> list[object]:
    p = TunnelPair("prop")
    conn = p.endpoint if conn_role is Role.ENDPOINT else p.device
    if conn_role is Role.DEVICE:
        p.hello(Batch(bid(0), b"first"))
    events: list[object] = []
    prev = 0
    for c in [*sorted(cuts), len(stream)]:
        if c > prev:
            conn.receive_data(stream[prev:c])
        prev = max(prev, c)
        while (ev := conn.next_event()) is not NEED_DATA:
            events.append(ev)
            if isinstance(ev, Closed):
                return events
        if conn.state is State.HELLO_RECEIVED:
            conn.send(Accept())
            while (ev := conn.next_event()) is not NEED_DATA:
                events.append(ev)
    return [e for e in events if not isinstance(e, DeviceHello | HandshakeComplete)]


@given(
    st.lists(st.binary(max_size=120), max_size=5),
    st.lists(st.binary(max_size=60), max_size=3),
    st.data(),
)
def test_any_split_yields_the_same_events(
    payloads: list[bytes], configs: list[bytes], data: st.DataObject
) -> None:
    up, down = _conversation(payloads, configs)
    ups = _feed(Role.ENDPOINT, up, [])
    assert ups == [Batch(bid(0), b"first", early=True)] + [
        Batch(bid(i + 1), x) for i, x in enumerate(payloads)
    ]
    downs = _feed(Role.DEVICE, down, [])
    assert downs == [Config(i, c) for i, c in enumerate(configs)]
    cut_up = data.draw(st.lists(st.integers(0, len(up)), max_size=8))
    cut_down = data.draw(st.lists(st.integers(0, len(down)), max_size=8))
    assert _feed(Role.ENDPOINT, up, cut_up) == ups
    assert _feed(Role.DEVICE, down, cut_down) == downs


@given(st.integers(0, 2**32 - 1), st.one_of(st.none(), st.binary(max_size=100)))
def test_hello_payload_round_trip(version: int, first: bytes | None) -> None:
    inner = None if first is None else F.Inner(F.BATCH, batch_id=bid(1), payload=first)
    assert F.decode_hello_payload(F.encode_hello_payload(version, inner)) == (version, inner)
    assert isinstance(Hello(version), Hello)
