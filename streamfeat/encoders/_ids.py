"""Id admission applied to records: which ids leave the device verbatim, which as buckets.

Every codec asks the encoder's admission filter about each value of an ``id`` field (items,
categories; see :data:`streamfeat.encoders._schema.ID_FIELDS`). An admitted id is sent as it
is; a refused one as its hashed bucket, which every decoder shows as the string
``"#b:<bucket>"`` (so rare ids cost a few bytes and never leave the device in clear).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from streamfeat.encoders._schema import Schema

__all__ = ["BUCKET_PREFIX", "Admission", "Decider", "bucket_label", "make_decider", "relabel_ids"]

BUCKET_PREFIX = "#b:"

Decider = Callable[[str], "int | None"]  # id -> None (admitted) or its bucket


class Admission(Protocol):
    """What encoders need from an admission filter (``streamfeat.encoders.admission``)."""

    def admit(self, key: str) -> bool:
        """Count one sighting of ``key`` and return whether it is admitted."""

    def bucket(self, key: str) -> int:
        """Return the hashed bucket ``key`` is sent as when it is not admitted."""


def bucket_label(bucket: int) -> str:
    """Return what decoders show for a non-admitted id in ``bucket``."""
    return f"{BUCKET_PREFIX}{bucket}"


def make_decider(admission: Admission | None) -> Decider | None:
    """Return a per-record decider: one sighting per distinct id of a record, decision memoised.

    A record that names the same item twice (an ipv and a window key) counts it once, and the
    encoder can try a record twice (schema, then fallback) without counting it twice.
    """
    if admission is None:
        return None
    memo: dict[str, int | None] = {}

    def decide(key: str) -> int | None:
        if key in memo:
            return memo[key]
        res = None if admission.admit(key) else admission.bucket(key)
        memo[key] = res
        return res

    decide.reset = memo.clear  # type: ignore[attr-defined]
    return decide


def _relabel(value: Any, decide: Decider) -> Any:
    if isinstance(value, str):
        b = decide(value)
    elif type(value) is int:
        b = decide(str(value))
    else:
        return value
    return value if b is None else bucket_label(b)


def relabel_ids(record: dict[str, Any], schema: Schema, decide: Decider) -> dict[str, Any]:
    """Return ``record`` with each non-admitted id of ``schema``'s id fields as its bucket label.

    Fields that are missing or of an unexpected shape are left alone (the record is then sent
    self-described, still without verbatim refused ids where they were found).
    """
    out = dict(record)
    values = out.get("values")
    if isinstance(values, dict):
        values = out["values"] = dict(values)
    for f in schema.fields:
        holder = values if f.in_values else out
        if not isinstance(holder, dict) or f.name not in holder:
            continue
        v = holder[f.name]
        if f.kind == "id":
            holder[f.name] = _relabel(v, decide)
        elif f.kind == "top" and f.of == "id" and isinstance(v, list | tuple):
            holder[f.name] = [
                [_relabel(p[0], decide), *p[1:]] if isinstance(p, list | tuple) and p else p
                for p in v
            ]
    return out
