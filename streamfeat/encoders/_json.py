"""The ``json`` codec: the batch's records as one JSON array (for debugging; exact for JSON values).

Floats round-trip exactly (orjson writes the shortest repr); non-finite floats, which JSON has
no literal for, come back as ``null``, as in the replay tool's JSONL output.
"""

from __future__ import annotations

from typing import Any

import orjson

from streamfeat.encoders._plain import check_records
from streamfeat.errors import DecodeError, EncodeError

__all__ = ["decode_json", "encode_json"]


def encode_json(records: list[dict[str, Any]]) -> bytes:
    """Return the JSON array of ``records`` (already stripped of attachments).

    Raises:
        EncodeError: a value JSON cannot carry (an int beyond 64 bits, a set, ...).
    """
    try:
        return orjson.dumps(records)
    except TypeError as exc:  # orjson.JSONEncodeError derives from TypeError
        msg = f"record cannot be written as JSON: {exc}"
        raise EncodeError(msg) from exc


def decode_json(body: bytes, count: int) -> list[dict[str, Any]]:
    """Return the ``count`` records of a JSON body.

    Raises:
        DecodeError: not JSON, not an array of ``count`` objects, or nested too deep.
    """
    if body[:1] != b"[" or body[-1:] != b"]":
        # the encoder writes the array alone; JSON would allow whitespace around it, so a
        # batch with bytes after its body (a space, a tab, a newline) would otherwise pass
        msg = "json body is not one array with nothing around it"
        raise DecodeError(msg)
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        msg = f"json body does not parse: {exc}"
        raise DecodeError(msg) from exc
    return check_records(obj, count)
