"""Round trips of the wire format, and any split of the byte stream gives the same events."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import given

from streamfeat.errors import RemoteProtocolError
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


@given(
    st.lists(
        st.tuples(st.sampled_from(sorted(F.RECORD_TYPES)), st.binary(max_size=300)), max_size=8
    ),
    st.data(),
)
def test_buffer_matches_a_plain_parser_under_any_feeds_and_takes(
    records: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    """Feeds and takes in any order (a message parsed in place, a cut record moved to the
    bytearray, bytes fed while a record waits) against a parser over one plain bytes string."""
    stream = b"".join(F.encode_record(t, b) for t, b in records)
    buf, fed, want_pos, must_feed = F.Buffer(), 0, 0, False

    def plain_next(pos: int) -> tuple[tuple[int, bytes] | None, int]:
        if fed - pos < 3:
            return None, pos
        length = int.from_bytes(stream[pos + 1 : pos + 3], "big")
        if fed - pos < 3 + length:
            return None, pos
        return (stream[pos], stream[pos + 3 : pos + 3 + length]), pos + 3 + length

    while fed < len(stream) or len(buf):
        if fed < len(stream) and (must_feed or data.draw(st.booleans())):
            n = data.draw(st.integers(1, len(stream) - fed))
            chunk = stream[fed : fed + n]
            buf.feed(bytearray(chunk) if data.draw(st.booleans()) else chunk)
            fed += n
            must_feed = False
        else:
            want, want_pos = plain_next(want_pos)
            r = buf.next_record()
            assert r == want
            if r is not None:
                assert type(r[1]) is bytes
            must_feed = r is None  # nothing whole waits: the next step feeds
        assert len(buf) == fed - want_pos
    assert want_pos == len(stream)


def test_buffer_refuses_an_unknown_type_and_consumes_nothing() -> None:
    for first in (b"", b"\x03\x00\x01x"):  # in place, and after a record
        buf = F.Buffer()
        buf.feed(first + b"\x7f\x00\x00")
        if first:
            assert buf.next_record() == (F.DATA, b"x")
        with pytest.raises(RemoteProtocolError, match="unknown record type 0x7f"):
            buf.next_record()
        assert len(buf) == 3
        buf.feed(b"more")  # moved to the bytearray with what waits: still refused
        with pytest.raises(RemoteProtocolError):
            buf.next_record()
        assert len(buf) == 7
