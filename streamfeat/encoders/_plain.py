"""Checks shared by the generic codecs: a decoded body must be plain JSON-like records."""

from __future__ import annotations

from typing import Any

from streamfeat.errors import DecodeError

__all__ = ["MAX_PLAIN_DEPTH", "check_records"]

MAX_PLAIN_DEPTH = 64
_SCALARS = (type(None), bool, int, float, str)


def _check(v: Any, depth: int) -> None:
    t = type(v)
    if t in _SCALARS:
        return
    if depth >= MAX_PLAIN_DEPTH:
        msg = f"value nested deeper than {MAX_PLAIN_DEPTH} levels"
        raise DecodeError(msg)
    if t is list:
        for x in v:
            _check(x, depth + 1)
    elif t is dict:
        for k, x in v.items():
            if type(k) is not str:
                msg = f"map key {k!r} is not a string"
                raise DecodeError(msg)
            _check(x, depth + 1)
    else:
        msg = f"value of type {t.__name__} is not a JSON value"
        raise DecodeError(msg)


def check_records(obj: Any, count: int) -> list[dict[str, Any]]:
    """Return ``obj`` when it is a list of ``count`` plain objects.

    Raises:
        DecodeError: naming what was wrong.
    """
    if type(obj) is not list:
        msg = f"batch body is a {type(obj).__name__}, not a list of records"
        raise DecodeError(msg)
    if len(obj) != count:
        msg = f"batch header says {count} records, body has {len(obj)}"
        raise DecodeError(msg)
    for i, rec in enumerate(obj):
        if type(rec) is not dict:
            msg = f"record {i} is a {type(rec).__name__}, not an object"
            raise DecodeError(msg)
        _check(rec, 1)
    return obj
