"""Decoder robustness: any bytes give records or a DecodeError, never another exception, never
a hang, never an allocation driven by a length field beyond the input's size."""

from __future__ import annotations

import tracemalloc
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamfeat.encoders import CODECS, decode_batch, encoder_for, index_schemas, schemas_for
from streamfeat.encoders._batch import header
from streamfeat.encoders._wire import put_uvarint
from streamfeat.errors import DecodeError
from streamfeat.tasks import parse_tasks
from tests.property._encoders_strategies import records
from tests.unit.encoders.conftest import TASKS_TOML, sample_records

SCHEMAS = schemas_for(parse_tasks(TASKS_TOML))
BY_ID = index_schemas(SCHEMAS)


def decode_or_error(data: bytes) -> list[dict[str, Any]] | None:
    """Decode; return None on DecodeError; any other exception fails the test."""
    try:
        out = decode_batch(data, BY_ID)
    except DecodeError:
        return None
    assert isinstance(out, list)
    assert all(isinstance(r, dict) for r in out)
    return out


@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    decode_or_error(data)


@given(st.sampled_from(tuple(CODECS)), st.integers(0, 300), st.binary(max_size=300))
def test_random_bodies_behind_a_valid_header(codec: str, count: int, body: bytes) -> None:
    decode_or_error(bytes(header(codec, SCHEMAS, count)) + body)


@st.composite
def valid_batches(draw: st.DrawFn) -> bytes:
    codec = draw(st.sampled_from(tuple(CODECS)))
    batch = draw(st.lists(records(SCHEMAS), max_size=6))
    return encoder_for(codec, SCHEMAS).encode_batch(batch)


@given(valid_batches(), st.data())
def test_truncated_batches_are_refused(data: bytes, draw: st.DataObject) -> None:
    cut = draw.draw(st.integers(0, len(data) - 1))
    with pytest.raises(DecodeError):
        decode_batch(data[:cut], BY_ID)


@given(
    valid_batches(),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4),
)
def test_mutated_batches(data: bytes, flips: list[tuple[int, int]]) -> None:
    buf = bytearray(data)
    for pos, mask in flips:
        buf[pos % len(buf)] ^= mask
    decode_or_error(bytes(buf))


@given(valid_batches(), st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_refused(data: bytes, extra: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_batch(data + extra, BY_ID)


@pytest.mark.parametrize("extra", [b"\t", b" ", b"\n", b"\r\n"])
def test_json_whitespace_after_a_json_body_is_refused(extra: bytes) -> None:
    # found by the property test above: orjson reads JSON whitespace after the array as
    # nothing, so a json batch with such a byte appended used to decode
    data = encoder_for("json", SCHEMAS).encode_batch(sample_records())
    decode_batch(data, BY_ID)
    with pytest.raises(DecodeError, match="nothing around it"):
        decode_batch(data + extra, BY_ID)


def test_every_prefix_and_byte_flip_of_a_real_batch() -> None:
    for codec in CODECS:
        data = encoder_for(codec, SCHEMAS).encode_batch(sample_records())
        for cut in range(len(data)):
            with pytest.raises(DecodeError):
                decode_batch(data[:cut], BY_ID)
        for i in range(len(data)):
            for mask in (0x01, 0x80, 0xFF):
                buf = bytearray(data)
                buf[i] ^= mask
                decode_or_error(bytes(buf))


def _huge_length_batches() -> list[bytes]:
    big = 2**62
    out = []
    # the header's record count
    h = bytearray(b"SF\x13") + SCHEMAS.id.to_bytes(4, "big")
    put_uvarint(h, SCHEMAS.version)
    put_uvarint(h, big)
    out.append(bytes(h) + b"\x00" * 8)
    # a compact fallback record: a list / map / string claiming 2**62 elements or bytes
    for body in (b"\x00\x06", b"\x00\x07", b"\x00\x05\x00"):
        b = bytearray(header("compact", SCHEMAS, 1)) + body
        put_uvarint(b, big if body[-1] != 0 else big << 1)
        out.append(bytes(b) + b"\x01\x02\x03")
    # a top list of 2**62 pairs in a window record
    idx = next(i for i, s in enumerate(SCHEMAS.schemas) if s.label == "window:clicks_10m") + 1
    b = bytearray(header("compact", SCHEMAS, 1))
    put_uvarint(b, idx)
    # bitmap: end = start + size, key = device; device "d1" defined; start; n; items; top
    b += b"\x06" + b"\x00\x04d1" + b"\x02" + b"\x02\x02"
    put_uvarint(b, big)
    out.append(bytes(b))
    # an id defined inline with a 2**58-byte string
    ipv_idx = next(i for i, s in enumerate(SCHEMAS.schemas) if s.label == "feature:ipv") + 1
    b = bytearray(header("compact", SCHEMAS, 1))
    put_uvarint(b, ipv_idx)
    b += b"\x00\x00" + b"\x00\x04d1"  # bitmap, device "d1" defined, then the item id
    put_uvarint(b, ((2**58) << 1 << 2) | 3)
    out.append(bytes(b))
    # msgpack: array32 / str32 / map32 headers claiming 2**32 - 1 elements
    for marker in (b"\xdd", b"\xdb", b"\xdf", b"\xc6"):
        out.append(bytes(header("msgpack", SCHEMAS, 1)) + b"\x91" + marker + b"\xff\xff\xff\xff")
    # json: a deeply nested array
    out.append(bytes(header("json", SCHEMAS, 1)) + b"[" * 100_000)
    # compact: deep nesting in a fallback record
    out.append(bytes(header("compact", SCHEMAS, 1)) + b"\x00" + b"\x06\x01" * 10_000)
    return out


@pytest.mark.parametrize("data", _huge_length_batches())
def test_huge_length_fields_do_not_allocate(data: bytes) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError):
            decode_batch(data, BY_ID)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000 + 50 * len(data), peak


def test_msgpack_values_that_are_not_json_are_refused() -> None:
    for obj in (
        [{"kind": b"bytes"}],
        [{"kind": msgpack.ExtType(5, b"x")}],
        [{1: 2}],
        [[1]],
        {"a": 1},
    ):
        body = msgpack.packb(obj, use_bin_type=True)
        with pytest.raises(DecodeError):
            decode_batch(bytes(header("msgpack", SCHEMAS, 1)) + body, BY_ID)


def test_non_bytes_input_is_a_decode_error() -> None:
    for bad in (None, "SF", 123, [1, 2]):
        with pytest.raises(DecodeError):
            decode_batch(bad, BY_ID)  # type: ignore[arg-type]
