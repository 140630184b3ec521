"""Round trips under Hypothesis: every field kind, every codec, batch boundaries, empty batches.

Integers, ids and strings come back exactly (types included); floats exactly, except in
``num`` fields of the ``compact`` codec, where they come back within the field's declared
precision. Records off their schema and records of no schema come back exactly too.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from streamfeat.encoders import CODECS, decode_batch, encoder_for, index_schemas, schemas_for
from streamfeat.encoders._wire import Reader, StrTable, StrTableReader, put_svarint, put_uvarint
from streamfeat.tasks import parse_tasks
from tests.property._encoders_strategies import assert_compact_equal, record_of, records, same
from tests.unit.encoders.conftest import TASKS_TOML

SCHEMAS = schemas_for(parse_tasks(TASKS_TOML))
BY_ID = index_schemas(SCHEMAS)


def public(rec: dict[str, Any]) -> dict[str, Any]:
    # not streamfeat._records.public: it indexes k[0], which fails on an empty key
    return {k: v for k, v in rec.items() if not k.startswith("_")}


def check(codec: str, batch: list[dict[str, Any]], decoded: list[dict[str, Any]]) -> None:
    assert len(decoded) == len(batch)
    for d, o in zip(decoded, batch, strict=True):
        if codec == "compact":
            assert_compact_equal(d, o, SCHEMAS)
        else:
            assert same(d, public(o)), (d, o)


@given(st.lists(records(SCHEMAS), max_size=10))
def test_every_codec_round_trips(batch: list[dict[str, Any]]) -> None:
    for codec in CODECS:
        check(codec, batch, decode_batch(encoder_for(codec, SCHEMAS).encode_batch(batch), BY_ID))


@given(st.lists(records(SCHEMAS, infinity=True), max_size=8))
def test_binary_codecs_carry_infinities(batch: list[dict[str, Any]]) -> None:
    for codec in ("msgpack", "compact"):
        check(codec, batch, decode_batch(encoder_for(codec, SCHEMAS).encode_batch(batch), BY_ID))


@given(st.one_of([st.lists(record_of(s), min_size=1, max_size=12) for s in SCHEMAS.schemas]))
def test_records_of_one_schema_never_fall_back(batch: list[dict[str, Any]]) -> None:
    enc = encoder_for("compact", SCHEMAS)
    decoded = decode_batch(enc.encode_batch(batch), BY_ID)
    check("compact", batch, decoded)
    # in-range values of the right kinds always fit (ts / ints near the 64-bit edges may not)
    if all(_in_range(r) for r in batch):
        assert enc.stats["fallback"] == 0


def _in_range(v: Any) -> bool:
    if type(v) is int:
        return -(2**60) < v < 2**60
    if isinstance(v, dict):
        return all(_in_range(x) for x in v.values())
    if isinstance(v, list):
        return all(_in_range(x) for x in v)
    return True


@given(st.lists(records(SCHEMAS), max_size=12), st.lists(st.integers(0, 12), max_size=4))
def test_batch_boundaries_do_not_matter(batch: list[dict[str, Any]], cuts: list[int]) -> None:
    bounds = sorted({0, len(batch), *(min(c, len(batch)) for c in cuts)})
    for codec in CODECS:
        enc = encoder_for(codec, SCHEMAS)  # one encoder, many batches: no state leaks between them
        decoded: list[dict[str, Any]] = []
        for lo, hi in itertools.pairwise(bounds):
            decoded += decode_batch(enc.encode_batch(batch[lo:hi]), BY_ID)
        decoded += decode_batch(enc.encode_batch([]), BY_ID)
        check(codec, batch, decoded)


def leb128_reference(n: int) -> bytes:
    """Little-endian base-128 from the bit string, 7 bits a byte, high bit = more."""
    bits = bin(n)[2:]
    groups = [bits[max(0, i - 7) : i] for i in range(len(bits), 0, -7)] or ["0"]
    return bytes((int(g, 2) | (0x80 if i < len(groups) - 1 else 0)) for i, g in enumerate(groups))


@given(st.integers(0, 2**64 - 1), st.integers(-(2**63), 2**63 - 1))
def test_varints_match_the_reference(u: int, s: int) -> None:
    buf = bytearray()
    put_uvarint(buf, u)
    assert bytes(buf) == leb128_reference(u)
    zz = 2 * s if s >= 0 else -2 * s - 1
    put_svarint(buf, s)
    assert bytes(buf) == leb128_reference(u) + leb128_reference(zz)
    r = Reader(bytes(buf))
    assert (r.uvarint(), r.svarint(), r.left()) == (u, s, 0)


@given(st.lists(st.text(max_size=8) | st.from_regex(r"[0-9]{1,20}", fullmatch=True), max_size=30))
def test_string_table_round_trips(strings: list[str]) -> None:
    table, buf = StrTable(), bytearray()
    for s in strings:
        if len(s) % 2:
            table.put(buf, s)
        else:
            table.put_id(buf, s)
    r, reader = Reader(bytes(buf)), StrTableReader()
    out = []
    for s in strings:
        if len(s) % 2:
            out.append(reader.get(r))
        else:
            x = r.uvarint()
            out.append(reader.at(r, x >> 2) if x & 3 == 0 else reader.define(r, x >> 2))
    assert out == strings
    assert r.left() == 0
