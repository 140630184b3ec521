"""TunnelConnection: every exchange in memory, bytes whole and split, and every refusal."""

from __future__ import annotations

import pytest

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
    Refuse,
    Role,
    State,
    TunnelConnection,
)
from streamfeat.tunnel import _frames as F

from .tunnel_helpers import DEVICE, ENDPOINT, TunnelPair, bid, det_random, drain, key


def test_full_handshake_then_batch_ack_config_close() -> None:
    p = TunnelPair()
    ev_e, ev_d = p.open()
    assert ev_e[0] == DeviceHello(DEVICE.public, ev_e[0].ephemeral, 0, False)
    assert isinstance(ev_e[1], HandshakeComplete)
    assert ev_e[1].peer_key == DEVICE.public
    assert isinstance(ev_d[0], HandshakeComplete)
    assert ev_d[0].peer_key == ENDPOINT.public
    assert ev_d[0].handshake_hash == ev_e[1].handshake_hash
    assert p.device.state is p.endpoint.state is State.OPEN
    assert p.to_endpoint(p.device.send(Batch(bid(1), b"payload"))) == [Batch(bid(1), b"payload")]
    assert p.to_device(p.endpoint.send(Ack(bid(1)))) == [Ack(bid(1))]
    assert p.to_device(p.endpoint.send(Config(7, b"[upload]\n"))) == [Config(7, b"[upload]\n")]
    assert p.to_endpoint(p.device.send(Close(CloseCode.NORMAL, "bye"))) == [
        Closed(CloseCode.NORMAL, "bye", remote=True)
    ]
    assert p.device.state is p.endpoint.state is State.CLOSED
    assert p.device.send(Close()) == b""  # closing twice is harmless


def test_first_batch_rides_in_the_first_message() -> None:
    p = TunnelPair()
    ev_e, _ = p.open(first=Batch(bid(9), b"early"), version=3)
    assert ev_e[0].has_early_batch
    assert ev_e[0].config_version == 3
    assert ev_e[2] == Batch(bid(9), b"early", early=True)
    assert p.endpoint.config_version == 3


def test_refuse_before_handshake_reaches_the_device_as_closed() -> None:
    p = TunnelPair()
    p.endpoint.receive_data(p.hello())
    drain(p.endpoint)
    out = p.endpoint.send(Refuse(CloseCode.UNKNOWN_DEVICE, "who"))
    assert p.endpoint.state is State.CLOSED
    assert p.to_device(out) == [Closed(CloseCode.UNKNOWN_DEVICE, "who", remote=True)]


def _exchange_bytes() -> tuple[bytes, bytes, list[object], list[object]]:
    p = TunnelPair("split")
    hello = p.hello(Batch(bid(1), b"a" * 50))
    p.endpoint.receive_data(hello)
    drain(p.endpoint)
    welcome = p.endpoint.send(Accept())
    e_events = drain(p.endpoint)
    p.device.receive_data(welcome)
    d_events = drain(p.device)
    up = b"".join(p.device.send(Batch(bid(i), bytes([i]) * i)) for i in range(2, 6))
    down = welcome + p.endpoint.send(Ack(bid(1))) + p.endpoint.send(Config(1, b"cfg"))
    return hello + up, down, e_events, d_events


def _events_fed(conn: TunnelConnection, chunks: list[bytes], accept: bool) -> list[object]:
    events: list[object] = []
    for c in chunks:
        if not c:
            continue  # b"" would mean eof
        conn.receive_data(c)
        while True:
            ev = conn.next_event()
            if ev is NEED_DATA:
                if accept and conn.state is State.HELLO_RECEIVED:
                    conn.send(Accept())
                    continue
                break
            events.append(ev)
            if isinstance(ev, Closed):
                break
    return [e for e in events if not isinstance(e, DeviceHello | HandshakeComplete)]


def test_split_at_every_position_gives_the_same_events() -> None:
    up, _down, _, _ = _exchange_bytes()

    def endpoint() -> TunnelConnection:
        return TunnelConnection(Role.ENDPOINT, static=ENDPOINT, random_bytes=det_random("split/e"))

    whole = _events_fed(endpoint(), [up], True)
    assert [type(e).__name__ for e in whole] == ["Batch"] * 5
    for i in range(len(up) + 1):
        assert _events_fed(endpoint(), [up[:i], up[i:]], True) == whole, i
    assert _events_fed(endpoint(), [up[i : i + 1] for i in range(len(up))], True) == whole


def test_device_split_at_every_position() -> None:
    p = TunnelPair("split")
    p.hello(Batch(bid(1), b"a" * 50))
    _, down, _, _ = _exchange_bytes()
    whole = _events_fed(p.device, [down], False)
    assert whole == [Ack(bid(1)), Config(1, b"cfg")]
    for i in range(len(down) + 1):
        q = TunnelPair("split")
        q.hello(Batch(bid(1), b"a" * 50))
        assert _events_fed(q.device, [down[:i], down[i:]], False) == whole, i


def _open_pair() -> TunnelPair:
    p = TunnelPair()
    p.open()
    return p


def _refused(events: list[object], code: CloseCode) -> None:
    assert events, "no events"
    assert isinstance(events[-1], Closed), events
    assert events[-1].code == code
    assert not events[-1].remote


def test_tampered_frame_closes_decrypt_failed_and_tells_the_peer() -> None:
    p = _open_pair()
    frame = bytearray(p.device.send(Batch(bid(1), b"x" * 20)))
    frame[-5] ^= 1
    _refused(p.to_endpoint(bytes(frame)), CloseCode.DECRYPT_FAILED)
    assert p.endpoint.error is not None
    assert p.endpoint.error.close_code == CloseCode.DECRYPT_FAILED
    notice = p.endpoint.data_to_send()
    assert p.to_device(notice) == [Closed(CloseCode.DECRYPT_FAILED, "decrypt_failed", remote=True)]


def test_replayed_frame_closes_replayed() -> None:
    p = _open_pair()
    frame = p.device.send(Batch(bid(1), b"x"))
    assert p.to_endpoint(frame) == [Batch(bid(1), b"x")]
    _refused(p.to_endpoint(frame), CloseCode.REPLAYED_FRAME)


def test_reordered_frames_close_reordered() -> None:
    p = _open_pair()
    f1 = p.device.send(Batch(bid(1), b"x"))
    f2 = p.device.send(Batch(bid(2), b"y"))
    assert f1
    _refused(p.to_endpoint(f2), CloseCode.REORDERED_FRAME)


def test_frame_from_another_connection_is_refused() -> None:
    p, q = _open_pair(), TunnelPair("other")
    q.open()
    _refused(p.to_endpoint(q.device.send(Batch(bid(1), b"x"))), CloseCode.DECRYPT_FAILED)


def test_acks_are_cumulative_on_the_wire_and_per_batch_in_the_api() -> None:
    p = TunnelPair()
    p.open(first=Batch(bid(0), b"early"))
    frames = b"".join(p.device.send(Batch(bid(i), b"x")) for i in range(1, 4))
    assert [e.batch_id for e in p.to_endpoint(frames)] == [bid(1), bid(2), bid(3)]
    ack = p.endpoint.send(Ack(bid(2)))  # acknowledges 0, 1 and 2
    assert len(ack) < 30
    assert p.to_device(ack) == [Ack(bid(0)), Ack(bid(1)), Ack(bid(2))]
    assert p.to_device(p.endpoint.send(Ack(bid(3)))) == [Ack(bid(3))]


def test_endpoint_cannot_ack_what_it_did_not_receive() -> None:
    p = _open_pair()
    with pytest.raises(LocalProtocolError):
        p.endpoint.send(Ack(bid(5)))
    assert p.endpoint.state is State.OPEN


def test_ack_beyond_what_was_sent_closes_the_device() -> None:
    p = _open_pair()
    p.device.send(Batch(bid(1), b"x"))
    forged = p.endpoint._seal(F.Inner(F.ACK, version=2))
    _refused(p.to_device(forged), CloseCode.PROTOCOL_ERROR)


def test_truncated_stream_closes_truncated() -> None:
    p = _open_pair()
    frame = p.device.send(Batch(bid(1), b"x" * 40))
    p.endpoint.receive_data(frame[:-3])
    assert p.endpoint.next_event() is NEED_DATA
    p.endpoint.receive_data(b"")
    _refused(drain(p.endpoint), CloseCode.TRUNCATED)


def test_short_data_record_closes_truncated() -> None:
    p = _open_pair()
    _refused(p.to_endpoint(F.encode_record(F.DATA, b"\x00" * 10)), CloseCode.TRUNCATED)


def test_wrong_endpoint_key_fails_the_handshake_on_both_sides() -> None:
    p = TunnelPair(endpoint_key=key("impostor").public)
    _refused(p.to_endpoint(p.hello(Batch(bid(1), b"secret"))), CloseCode.HANDSHAKE_FAILED)
    assert p.to_device(p.endpoint.data_to_send()) == [
        Closed(CloseCode.HANDSHAKE_FAILED, "handshake_failed", remote=True)
    ]


def test_impostor_endpoint_is_refused_by_the_device() -> None:
    p = TunnelPair()
    impostor = TunnelConnection(Role.ENDPOINT, static=key("impostor"))
    impostor.receive_data(p.hello())
    assert drain(impostor)[-1].code == CloseCode.HANDSHAKE_FAILED  # can't even read message 1
    assert impostor.peer_key is None


def test_altered_welcome_fails_handshake() -> None:
    p = TunnelPair()
    p.endpoint.receive_data(p.hello())
    drain(p.endpoint)
    welcome = bytearray(p.endpoint.send(Accept()))
    welcome[-1] ^= 0x80
    _refused(p.to_device(bytes(welcome)), CloseCode.HANDSHAKE_FAILED)


def test_replayed_first_message_decrypts_again_so_the_endpoint_must_dedupe() -> None:
    p = TunnelPair()
    hello = p.hello(Batch(bid(1), b"x"))
    a = TunnelConnection(Role.ENDPOINT, static=ENDPOINT)
    b = TunnelConnection(Role.ENDPOINT, static=ENDPOINT)
    a.receive_data(hello)
    b.receive_data(hello)
    ha, hb = drain(a)[0], drain(b)[0]
    assert ha == hb  # same ephemeral: the server's replay cache keys on it


def test_unknown_record_type_closes_protocol_error() -> None:
    p = TunnelPair()
    _refused(p.to_endpoint(b"\x7f\x00\x00"), CloseCode.PROTOCOL_ERROR)


def test_device_may_not_send_ack() -> None:
    p = _open_pair()
    with pytest.raises(LocalProtocolError) as info:
        p.device.send(Ack(bid(1)))
    assert p.device.state is State.ERROR
    assert info.value.close_code == CloseCode.PROTOCOL_ERROR
    with pytest.raises(LocalProtocolError):
        p.device.next_event()


def test_bad_fields_raise_without_changing_state() -> None:
    p = _open_pair()
    with pytest.raises(LocalProtocolError):
        p.device.send(Batch(b"short", b""))
    with pytest.raises(LocalProtocolError):
        p.device.send(Batch(bid(1), b"x" * (F.MAX_BATCH + 1)))
    assert p.device.state is State.OPEN


def test_endpoint_ignores_bytes_after_close() -> None:
    p = _open_pair()
    frame = p.device.send(Batch(bid(1), b"x"))
    p.to_endpoint(p.device.send(Close()))
    p.endpoint.receive_data(frame)
    assert isinstance(p.endpoint.next_event(), Closed)


def test_data_after_eof_is_a_local_error() -> None:
    c = TunnelConnection(Role.ENDPOINT, static=ENDPOINT)
    c.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        c.receive_data(b"x")


def test_device_needs_the_endpoint_key() -> None:
    with pytest.raises(ValueError, match="remote_static"):
        TunnelConnection(Role.DEVICE, static=DEVICE)


def test_hello_payload_round_trip() -> None:
    first = F.Inner(F.BATCH, batch_id=bid(3), payload=b"abc")
    assert F.decode_hello_payload(F.encode_hello_payload(5, first)) == (5, first)
    assert F.decode_hello_payload(F.encode_hello_payload(0, None)) == (0, None)
