"""The cloud side: bytes of any batch back to records, with the schemas of the tasks files.

The endpoint keeps the schema sets of every tasks file its devices run (``index_schemas``);
the batch header says which one and which codec, so no flag is needed. Every failure, whatever
the input, is a :class:`~streamfeat.errors.DecodeError`; a batch naming a schema set the
endpoint does not know is an :class:`~streamfeat.errors.UnknownSchemaError`, never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamfeat.encoders._batch import CODEC_NAMES, FORMAT_VERSION, MAGIC
from streamfeat.encoders._compact import decode_compact
from streamfeat.encoders._json import decode_json
from streamfeat.encoders._msgpack import decode_msgpack
from streamfeat.encoders._schema import SchemaSet
from streamfeat.encoders._wire import Reader
from streamfeat.errors import DecodeError, UnknownSchemaError

__all__ = ["BatchInfo", "decode_batch", "read_header"]


class BatchInfo:
    """What a batch header says: codec, schema id and version, record count, body offset."""

    __slots__ = ("codec", "count", "offset", "schema_id", "schema_version")

    def __init__(
        self, codec: str, schema_id: int, schema_version: int, count: int, offset: int
    ) -> None:
        self.codec = codec
        self.schema_id = schema_id
        self.schema_version = schema_version
        self.count = count
        self.offset = offset

    def __repr__(self) -> str:
        return (
            f"BatchInfo(codec={self.codec!r}, schema_id={self.schema_id:#010x}, "
            f"schema_version={self.schema_version}, count={self.count})"
        )


def read_header(data: bytes) -> BatchInfo:
    """Parse a batch header (the endpoint may route on it before decoding the body).

    Raises:
        DecodeError: not a streamfeat batch, an unknown format version or codec, truncated.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        msg = f"a batch is bytes, got {type(data).__name__}"
        raise DecodeError(msg)
    data = bytes(data)
    if data[:2] != MAGIC:
        msg = "not a streamfeat batch (bad magic)"
        raise DecodeError(msg)
    r = Reader(data, 2)
    vc = r.byte()
    if vc >> 4 != FORMAT_VERSION:
        msg = f"batch format version {vc >> 4} is not supported (this build reads {FORMAT_VERSION})"
        raise DecodeError(msg)
    codec = CODEC_NAMES.get(vc & 0xF)
    if codec is None:
        msg = f"batch codec {vc & 0xF} is unknown"
        raise DecodeError(msg)
    schema_id = int.from_bytes(r.take(4), "big")
    version = r.uvarint()
    count = r.uvarint()
    return BatchInfo(codec, schema_id, version, count, r.pos)


def decode_batch(
    data: bytes, schemas_by_id: Mapping[int, SchemaSet] | SchemaSet
) -> list[dict[str, Any]]:
    """Return the records of one batch, whichever codec wrote it.

    Args:
        data: the batch bytes.
        schemas_by_id: the known schema sets by id (``index_schemas(...)``), or one set.

    Raises:
        UnknownSchemaError: the batch names a schema id or version not in ``schemas_by_id``.
        DecodeError: anything else wrong with the bytes.
    """
    info = read_header(data)
    data = bytes(data)
    known = (
        {schemas_by_id.id: schemas_by_id} if isinstance(schemas_by_id, SchemaSet) else schemas_by_id
    )
    schemas = known.get(info.schema_id)
    if schemas is None:
        msg = f"batch schema {info.schema_id:#010x} is unknown (known: {', '.join(f'{k:#010x}' for k in known) or 'none'})"
        raise UnknownSchemaError(msg)
    if schemas.version != info.schema_version:
        msg = f"batch schema {info.schema_id:#010x} has version {info.schema_version}, the known one {schemas.version}"
        raise UnknownSchemaError(msg)
    if info.count > len(data) - info.offset + 1:
        # every codec spends at least a byte per record (an empty json/msgpack list: 2 / 1)
        msg = f"record count {info.count} is larger than the batch"
        raise DecodeError(msg)
    if info.codec == "compact":
        return decode_compact(data, info.offset, info.count, schemas)
    body = data[info.offset :]
    if info.codec == "json":
        return decode_json(body, info.count)
    return decode_msgpack(body, info.count)
