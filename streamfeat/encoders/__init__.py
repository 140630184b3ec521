"""Encoders: records to compact bytes for the outbox and the tunnel, and back on the cloud side.

Layering (lowest first): ``_wire`` (varints, bounded reader, string tables) -> ``_schema``
(record schemas) -> ``_ids`` / ``admission`` (which ids go verbatim) -> one module
per codec (``_json``, ``_msgpack``, ``_compact``) -> ``_batch`` (framing, :class:`Encoder`) ->
``_decoder`` (the endpoint's :func:`decode_batch`) -> ``_sizes`` (the size report).

The schemas of a tasks file come from :func:`streamfeat.engine.schemas_for` (the composition
layer); this package does not read tasks files.
"""

from __future__ import annotations

from typing import Any

from streamfeat.encoders._batch import CODECS, Encoder, encoder_for
from streamfeat.encoders._decoder import BatchInfo, decode_batch, read_header
from streamfeat.encoders._ids import BUCKET_PREFIX, Admission, bucket_label
from streamfeat.encoders._schema import Field, Schema, SchemaSet, index_schemas
from streamfeat.encoders._sizes import SizeReport, SizeRow
from streamfeat.encoders.admission import (
    AdmissionSpec,
    CountingBloomAdmission,
    PoissonInclusion,
    PoissonProcessAdmission,
    load_admission,
    parse_admission,
    parse_admission_spec,
)

__all__ = [
    "BUCKET_PREFIX",
    "CODECS",
    "Admission",
    "AdmissionSpec",
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
    "parse_admission_spec",
    "read_header",
    "schemas_for",
]


def __getattr__(name: str) -> Any:
    # Moved to streamfeat.engine.schemas_for (it reads a tasks file); kept so old imports work.
    # Imported on first use so that this package never loads the tasks file's modules.
    if name == "schemas_for":
        from streamfeat.engine._schemas import schemas_for

        return schemas_for
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
