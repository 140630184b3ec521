"""Differential test: the compact codec's specialised writers against its reference walk.

``_compact_writers.py`` generates one function per schema; ``CompactEncoder._record`` walks
the schema's plan and is the reference. Over random batches (records of every schema, records
off their schema, records of no schema, values near the 64-bit edges, infinities) both must
write the same bytes, refuse the same records (counted as fallbacks) and leave the same batch
state (string table, last ts, previous record's values).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamfeat._compiled import compiled
from streamfeat.encoders._compact import CompactEncoder
from streamfeat.errors import EncodeError
from tests.property._encoders_strategies import record_of, records
from tests.property.test_encoders_roundtrip import SCHEMAS

# the compiled core encodes with its compiled reference walk and builds no writers
pytestmark = pytest.mark.skipif(compiled(), reason="the compiled core uses no generated writers")


def _run(batch: list[dict[str, Any]], specialised: bool) -> tuple[Any, ...]:
    stats: dict[str, int] = {}
    enc = CompactEncoder(SCHEMAS, None, stats)
    if not specialised:
        enc.writer = None
    else:
        assert enc.writer is not None
    outcome = []
    for rec in batch:
        try:
            enc.add(rec)
            outcome.append("ok")
        except EncodeError as exc:
            outcome.append(f"refused: {exc}")
    return (bytes(enc.buf), stats, enc.table.strings, enc.last_ts, enc.prev, outcome)


@given(st.lists(records(SCHEMAS), max_size=12))
def test_writers_equal_the_reference(batch: list[dict[str, Any]]) -> None:
    assert _run(batch, True) == _run(batch, False)


@given(st.lists(records(SCHEMAS, infinity=True), max_size=8))
def test_writers_equal_the_reference_with_infinities(batch: list[dict[str, Any]]) -> None:
    assert _run(batch, True) == _run(batch, False)


@given(st.one_of([st.lists(record_of(s), min_size=1, max_size=12) for s in SCHEMAS.schemas]))
def test_writers_equal_the_reference_on_one_schema(batch: list[dict[str, Any]]) -> None:
    assert _run(batch, True) == _run(batch, False)
