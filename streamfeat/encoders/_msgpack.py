"""The ``msgpack`` codec: the batch's records as one msgpack array (generic, exact)."""

from __future__ import annotations

from typing import Any

import msgpack

from streamfeat.encoders._plain import check_records
from streamfeat.errors import DecodeError, EncodeError

__all__ = ["decode_msgpack", "encode_msgpack"]


def encode_msgpack(records: list[dict[str, Any]]) -> bytes:
    """Return the msgpack array of ``records`` (already stripped of attachments).

    Raises:
        EncodeError: a value msgpack cannot carry (an int beyond 64 bits, a set, ...).
    """
    try:
        return msgpack.packb(records, use_bin_type=True)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError) as exc:
        msg = f"record cannot be written as msgpack: {exc}"
        raise EncodeError(msg) from exc


def decode_msgpack(body: bytes, count: int) -> list[dict[str, Any]]:
    """Return the ``count`` records of a msgpack body.

    Length fields are capped by the body's size, so a forged length cannot make the unpacker
    allocate more than the input.

    Raises:
        DecodeError: not msgpack, bytes left over, not ``count`` plain objects.
    """
    n = len(body)
    try:
        obj = msgpack.unpackb(
            body, raw=False, strict_map_key=True, use_list=True, timestamp=0,
            max_str_len=n, max_bin_len=n, max_array_len=n, max_map_len=n // 2, max_ext_len=n,
        )  # fmt: skip
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
        msg = f"msgpack body does not unpack: {exc}"
        raise DecodeError(msg) from exc
    return check_records(obj, count)
