"""Differential test: the compact codec's two fast writers against its reference walk.

``_compact_writers.py`` generates one function per schema set that writes a batch's records
one after another (the pure-Python default); ``_compact_walk.py`` walks typed field plans (the
compiled core's default); ``CompactEncoder._record`` walks a schema's plan and is the
reference. Each runs here whichever build is in use (the walk as Python in a pure run). Over
random batches (records of every schema, records off their schema, records of no schema, values
near the 64-bit edges, infinities, attachments and keys that are not attachments) both must
write the same bytes, refuse the same records (counted as fallbacks), raise the same errors and
leave the same batch state (string table, last ts, previous record's values), whether the
records come one by one (``add``) or as a batch (``add_many``).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from streamfeat._compiled import compiled
from streamfeat.encoders._compact import _MISSING, CompactEncoder, _Misfit, walk_for
from streamfeat.encoders._compact_writers import writer_for, writer_source
from streamfeat.errors import EncodeError
from tests.property._encoders_strategies import json_values, record_of, records
from tests.property.test_encoders_roundtrip import SCHEMAS


def _state(enc: CompactEncoder, stats: dict[str, int], outcome: list[str]) -> tuple[Any, ...]:
    return (bytes(enc.buf), stats, enc.table.strings, enc.last_ts, enc.prev, outcome)


MODES = ("writer", "walk")


def _encoder(mode: str, stats: dict[str, int]) -> CompactEncoder:
    enc = CompactEncoder(SCHEMAS, None, stats)
    enc.writer = writer_for(SCHEMAS, _Misfit, _MISSING) if mode == "writer" else None
    enc.walk = walk_for(SCHEMAS) if mode == "walk" else None
    return enc


def _run(batch: list[dict[str, Any]], mode: str) -> tuple[Any, ...]:
    stats: dict[str, int] = {}
    enc = _encoder(mode, stats)
    outcome = []
    for rec in batch:
        try:
            enc.add(rec)
            outcome.append("ok")
        except EncodeError as exc:
            outcome.append(f"refused: {exc}")
    return _state(enc, stats, outcome)


def _run_many(batch: list[dict[str, Any]], mode: str) -> tuple[Any, ...]:
    # the whole batch at once: stops at the first record no codec can carry
    stats: dict[str, int] = {}
    enc = _encoder(mode, stats)
    outcome = ["ok"]
    try:
        enc.add_many(batch)
    except EncodeError as exc:
        outcome = [f"refused: {exc}"]
    return _state(enc, stats, outcome)


@st.composite
def _attached(draw: st.DrawFn, rec: dict[str, Any]) -> dict[str, Any]:
    """``rec`` with keys on top: the engine's attachments, other `_` keys, or plain keys."""
    extra = draw(
        st.dictionaries(
            st.sampled_from(["_raw_bytes", "_events", "_x", "", "x"]) | st.text(max_size=4),
            json_values(False),
            max_size=3,
        )
    )
    return {**rec, **{k: v for k, v in extra.items() if k not in rec}}


def with_attachments() -> st.SearchStrategy[dict[str, Any]]:
    return records(SCHEMAS).flatmap(_attached)


def check(batch: list[dict[str, Any]]) -> None:
    one, many = _run(batch, "reference"), _run_many(batch, "reference")
    for mode in MODES:
        assert _run(batch, mode) == one, mode
        assert _run_many(batch, mode) == many, mode


def test_the_default_writer_follows_the_build() -> None:
    enc = CompactEncoder(SCHEMAS, None, {})
    if compiled():
        assert enc.walk is not None
        assert enc.writer is None
    else:
        assert enc.writer is not None
        assert enc.walk is None


@given(st.lists(records(SCHEMAS), max_size=12))
def test_writers_equal_the_reference(batch: list[dict[str, Any]]) -> None:
    check(batch)


@given(st.lists(records(SCHEMAS, infinity=True), max_size=8))
def test_writers_equal_the_reference_with_infinities(batch: list[dict[str, Any]]) -> None:
    check(batch)


@given(st.one_of([st.lists(record_of(s), min_size=1, max_size=12) for s in SCHEMAS.schemas]))
def test_writers_equal_the_reference_on_one_schema(batch: list[dict[str, Any]]) -> None:
    check(batch)


@given(st.lists(with_attachments(), max_size=10))
def test_writers_equal_the_reference_with_attachments(batch: list[dict[str, Any]]) -> None:
    check(batch)


def test_the_writer_dispatches_on_no_field_kind() -> None:
    # straight-line code: no call to the reference's per-field dispatch, no dictionary of
    # fields seen, and the kinds of this tasks file need none of the reference's helpers
    # but `_top` for lists of non-ids, `_id` for non-string ids and the self-describing values
    source = writer_source(SCHEMAS)
    assert "_field(" not in source
    assert "seen" not in source
    assert "_derived(" not in source
    assert "_record(" not in source


@given(
    st.lists(records(SCHEMAS), max_size=8),
    st.integers(0, 8),
    st.sampled_from([2**70, -(2**64), {1, 2}, b"bytes"]),
)
def test_a_record_no_codec_carries_stops_the_batch_alike(
    batch: list[dict[str, Any]], at: int, bad: Any
) -> None:
    # a record whose values no codec carries: refused by both, the state before it kept
    # (the generated writer keeps its last ts and previous values in locals until it returns)
    rec = {**batch[at % len(batch)], "_raw_bytes": 1, "zz": bad} if batch else {"zz": bad}
    batch = [*batch[:at], rec, *batch[at:]]
    assert _run_many(batch, "reference")[-1][0].startswith("refused")
    check(batch)
