"""The public API of streamfeat.encoders: every exported name resolves, reprs say what they are."""

from __future__ import annotations

import streamfeat.encoders as enc
import streamfeat.encoders.admission as adm
from streamfeat.encoders import SchemaSet, encoder_for, read_header


def test_every_name_in_all_resolves() -> None:
    for module in (enc, adm):
        for name in module.__all__:
            assert getattr(module, name) is not None, name


def test_reprs(schemas: SchemaSet) -> None:
    assert repr(schemas).startswith(f"SchemaSet(id={schemas.id:#010x}, version={schemas.version}")
    e = encoder_for("compact", schemas)
    assert repr(e).startswith("Encoder('compact', SchemaSet(")
    assert "codec='compact'" in repr(read_header(e.encode_batch([])))


def test_stats_count_batches_and_records(schemas: SchemaSet) -> None:
    from tests.unit.encoders.conftest import ipv

    e = encoder_for("msgpack", schemas)
    e.encode_batch([ipv(), ipv()])
    e.encode_batch([])
    assert e.stats == {"batches": 2, "records": 2, "fallback": 0}
