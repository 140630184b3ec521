"""Encoders: records to compact bytes for the outbox and the tunnel, and back on the cloud side.

Layering (lowest first): ``_wire`` (varints, bounded reader, string tables) -> ``_schema``
(schemas from a tasks file) -> ``_ids`` / ``admission`` (which ids go verbatim) -> one module
per codec (``_json``, ``_msgpack``, ``_compact``) -> ``_batch`` (framing, :class:`Encoder`) ->
``_decoder`` (the endpoint's :func:`decode_batch`) -> ``_sizes`` (the size report).

>>> from streamfeat.tasks import parse_tasks
>>> schemas = schemas_for(parse_tasks('[features.ipv]\\nkind = "ipv"'))
>>> rec = {"kind": "feature", "feature": "ipv", "device": "d1", "ts": 1_700_000_030_000,
...        "values": {"item": "42", "enter_ts": 1_700_000_000_000, "dwell_ms": 30_000,
...                   "truncated": False, "add_cart": 1, "purchase": 0, "favorite": 0,
...                   "comment": 0, "select_sku": 0, "ask": 0, "service": 0, "detail": 0,
...                   "shop": 0, "recommend": 0, "share": 0, "scroll": 4}}
>>> data = encoder_for("compact", schemas).encode_batch([rec])
>>> decode_batch(data, index_schemas(schemas)) == [rec]
True
"""

from __future__ import annotations

from streamfeat.encoders._batch import CODECS, Encoder, encoder_for
from streamfeat.encoders._decoder import BatchInfo, decode_batch, read_header
from streamfeat.encoders._ids import BUCKET_PREFIX, Admission, bucket_label
from streamfeat.encoders._schema import Field, Schema, SchemaSet, index_schemas, schemas_for
from streamfeat.encoders._sizes import SizeReport, SizeRow
from streamfeat.encoders.admission import (
    CountingBloomAdmission,
    PoissonInclusion,
    PoissonProcessAdmission,
    load_admission,
    parse_admission,
)

__all__ = [
    "BUCKET_PREFIX",
    "CODECS",
    "Admission",
    "BatchInfo",
    "CountingBloomAdmission",
    "Encoder",
    "Field",
    "PoissonInclusion",
    "PoissonProcessAdmission",
    "Schema",
    "SchemaSet",
    "SizeReport",
    "SizeRow",
    "bucket_label",
    "decode_batch",
    "encoder_for",
    "index_schemas",
    "load_admission",
    "parse_admission",
    "read_header",
    "schemas_for",
]
