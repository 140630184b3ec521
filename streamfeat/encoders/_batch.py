"""Batch framing shared by every codec, and the :class:`Encoder` the agent and tools use.

A batch is the unit the tunnel sends. Its header names the codec and the schema set, so the
endpoint decodes any batch with no configuration of its own::

    "SF"                 2 bytes, magic
    version << 4 | codec 1 byte: format version 1; codec 1 json, 2 msgpack, 3 compact
    schema id            4 bytes, big-endian (SchemaSet.id)
    schema version       varint (SchemaSet.version)
    record count         varint
    body                 the codec's bytes for the records

So every batch pays 9 header bytes (more only past 127 records), whatever its codec.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streamfeat.encoders._compact import encode_compact
from streamfeat.encoders._ids import Admission, make_decider, relabel_ids
from streamfeat.encoders._json import encode_json
from streamfeat.encoders._msgpack import encode_msgpack
from streamfeat.encoders._schema import SchemaSet
from streamfeat.encoders._wire import put_uvarint
from streamfeat.errors import EncodeError

__all__ = ["CODECS", "FORMAT_VERSION", "MAGIC", "Encoder", "encoder_for", "header"]

MAGIC = b"SF"
FORMAT_VERSION = 1
CODECS = {"json": 1, "msgpack": 2, "compact": 3}
CODEC_NAMES = {v: k for k, v in CODECS.items()}


def header(codec: str, schemas: SchemaSet, count: int) -> bytearray:
    """Return the batch header for ``count`` records of ``codec`` under ``schemas``."""
    out = bytearray(MAGIC)
    out.append(FORMAT_VERSION << 4 | CODECS[codec])
    out += schemas.id.to_bytes(4, "big")
    put_uvarint(out, schemas.version)
    put_uvarint(out, count)
    return out


def _public(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if not (isinstance(k, str) and k[:1] == "_")}


class Encoder:
    """Encodes batches of records with one codec and one schema set.

    Attributes:
        name: the codec (``json``, ``msgpack``, ``compact``).
        schemas: the schema set named in every batch header.
        admission: the id admission filter, or None (every id verbatim).
        stats: counters: ``batches``, ``records``, ``fallback`` (records that fit no schema
            and were sent self-described by ``compact``).
    """

    def __init__(self, name: str, schemas: SchemaSet, admission: Admission | None = None) -> None:
        if name not in CODECS:
            msg = f"unknown encoding {name!r} (known: {', '.join(CODECS)})"
            raise EncodeError(msg)
        self.name = name
        self.schemas = schemas
        self.admission = admission
        self.stats: dict[str, int] = {"batches": 0, "records": 0, "fallback": 0}

    def __repr__(self) -> str:
        return f"Encoder({self.name!r}, {self.schemas!r}, admission={self.admission!r})"

    def encode_batch(self, records: list[dict[str, Any]]) -> bytes:
        """Return one batch holding ``records`` (their ``_`` attachments are ignored).

        Raises:
            EncodeError: a record holds a value the codec cannot carry; nothing is counted.
        """
        # each element checked as an object: the compiled core would refuse a non-dict with a
        # TypeError on the way in, and a caller's bad record must be an EncodeError
        items: Sequence[object] = records
        for i, rec in enumerate(items):
            if type(rec) is not dict:
                msg = f"record {i} is a {type(rec).__name__}, not a dict"
                raise EncodeError(msg)
        decide = make_decider(self.admission)
        if self.name == "compact":
            body = encode_compact(records, self.schemas, decide, self.stats)
        else:
            plain = []
            for rec in records:
                pub = _public(rec)
                if decide is not None:
                    _, schema = self.schemas.lookup(pub)
                    if schema is not None:
                        decide.reset()  # type: ignore[attr-defined]
                        pub = relabel_ids(pub, schema, decide)
                plain.append(pub)
            body = encode_json(plain) if self.name == "json" else encode_msgpack(plain)
        out = header(self.name, self.schemas, len(records))
        out += body
        self.stats["batches"] += 1
        self.stats["records"] += len(records)
        return bytes(out)


def encoder_for(name: str, schemas: SchemaSet, *, admission: Admission | None = None) -> Encoder:
    """Return the encoder of codec ``name`` (``json``, ``msgpack`` or ``compact``).

    Raises:
        EncodeError: ``name`` is not a codec.
    """
    return Encoder(name, schemas, admission)
