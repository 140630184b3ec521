"""Hypothesis strategies for records of a schema set, and a strict comparison with precision."""

from __future__ import annotations

import functools
import math
from typing import Any

from hypothesis import strategies as st

from streamfeat.encoders import Field, Schema, SchemaSet

NAME_KEY = {
    "feature": "feature",
    "window": "window",
    "late": "window",
    "trigger": "trigger",
    "task": "task",
}
I64 = st.integers(-(2**63), 2**63 - 1)
JSON_INTS = st.integers(-(2**63), 2**64 - 1)


def floats(infinity: bool) -> st.SearchStrategy[float]:
    return st.floats(allow_nan=False, allow_infinity=infinity)


def scalars(infinity: bool) -> st.SearchStrategy[Any]:
    return st.none() | st.booleans() | JSON_INTS | floats(infinity) | st.text(max_size=12)


def json_values(infinity: bool) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars(infinity),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
        max_leaves=12,
    )


TS = st.integers(0, 2**53 - 1) | st.integers(1_767_225_600_000, 1_767_225_700_000) | I64
IDS = (
    st.text(max_size=20)
    | st.from_regex(r"[1-9][0-9]{0,20}", fullmatch=True)
    | st.sampled_from(["0", "00", "007", "2333346", "#b:12"])
    | I64
)


def for_kind(kind: str, infinity: bool, f: Field | None = None) -> st.SearchStrategy[Any]:
    """Values of a field kind (a few off-kind values come from ``misfit``)."""
    if kind == "int":
        return I64
    if kind in ("uint", "count"):
        return st.integers(0, 2**64 - 1) | st.integers(0, 300)
    if kind == "ts":
        return TS
    if kind == "id":
        return IDS
    if kind == "str":
        return st.text(max_size=20) | st.sampled_from(["home_feed", "item_detail", "d1"])
    if kind == "flag":
        return st.booleans()
    if kind == "num":
        return I64 | floats(infinity) | st.floats(-1e6, 1e6)
    if kind == "top":
        assert f is not None
        pair = st.tuples(for_kind(f.of, infinity), st.integers(0, 2**64 - 1)).map(list)
        return st.lists(pair, max_size=4)
    if kind == "map":
        return st.dictionaries(st.text(max_size=8), _json_values(infinity), max_size=5)
    return scalars(infinity) | st.integers(-300, 300)  # any: small ints have a short form


@functools.cache
def field_values(f: Field, infinity: bool) -> st.SearchStrategy[Any]:
    base = for_kind(f.kind, infinity, f)
    return st.none() | base if f.nullable else base


def record_of(schema: Schema, infinity: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    """Records that fit ``schema`` (derived fields sometimes follow their prediction)."""
    return _record_of(schema, tuple(field_values(f, infinity) for f in schema.fields))


@functools.cache
def _json_values(infinity: bool) -> st.SearchStrategy[Any]:
    return json_values(infinity)


@st.composite
def _record_of(
    draw: st.DrawFn, schema: Schema, strategies: tuple[st.SearchStrategy[Any], ...]
) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for f, strategy in zip(schema.fields, strategies, strict=True):
        v = draw(strategy)
        if f.derive and draw(st.booleans()):
            if f.derive[0] == "sum":
                a = seen.get(f.derive[1])
                b = f.derive[2] if isinstance(f.derive[2], int) else seen.get(f.derive[2])
                # a sum past the 64-bit range is a value no JSON codec carries, not a record
                # the schema's prediction is for
                if type(a) is int and type(b) is int and -(2**63) <= a + b < 2**64:
                    v = a + b
            elif f.derive[0] == "eq" and f.derive[1] in seen:
                v = seen[f.derive[1]]
        seen[f.qname] = v
    rec: dict[str, Any] = {"kind": schema.kind, NAME_KEY[schema.kind]: schema.name}
    for key in schema.layout[2:]:
        if key == "values" and schema.values is not None:
            rec["values"] = {k: seen["v." + k] for k in schema.values}
        else:
            rec[key] = seen[key]
    return rec


@st.composite
def misfit(draw: st.DrawFn, rec: dict[str, Any], infinity: bool = False) -> dict[str, Any]:
    """``rec`` with one key added, dropped or given an arbitrary value."""
    rec = {**rec}
    if isinstance(rec.get("values"), dict):
        rec["values"] = dict(rec["values"])
    target = rec["values"] if isinstance(rec.get("values"), dict) and draw(st.booleans()) else rec
    keys = sorted(k for k in target if k not in ("kind",))
    action = draw(st.sampled_from(["add", "drop", "change"]))
    if action == "add" or not keys:
        target[draw(st.text(max_size=6))] = draw(_json_values(infinity))
    elif action == "drop":
        del target[draw(st.sampled_from(keys))]
    else:
        target[draw(st.sampled_from(keys))] = draw(_json_values(infinity))
    return rec


def records(schemas: SchemaSet, infinity: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    """Records of every schema, some off their schema, some of no schema at all."""
    fitting = st.one_of([record_of(s, infinity) for s in schemas.schemas])
    other = st.dictionaries(st.text(max_size=6), _json_values(infinity), max_size=4).map(
        lambda d: {"kind": "quarantine", **d}
    )
    return st.one_of(
        fitting, fitting, fitting, fitting.flatmap(lambda r: misfit(r, infinity)), other
    )


records = functools.cache(records)


def same(a: Any, b: Any) -> bool:
    """Strict equality: types too (True is not 1, 1 is not 1.0), recursively."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def within(decoded: Any, original: Any, decimals: int) -> bool:
    """A ``num`` field: ints exact, floats within the declared precision (or raw, exact)."""
    if type(original) is not float:
        return same(decoded, original)
    if type(decoded) is not float:
        return False
    if not math.isfinite(original):
        return decoded == original
    return abs(decoded - original) <= 0.5 * 10**-decimals * (1 + 1e-9)


def assert_compact_equal(
    decoded: dict[str, Any], original: dict[str, Any], schemas: SchemaSet
) -> None:
    """``decoded`` equals ``original`` exactly, but for ``num`` floats within their precision."""
    _, schema = schemas.lookup(original)
    public = {k: v for k, v in original.items() if not k.startswith("_")}
    if schema is None or decoded.keys() != public.keys() or same(decoded, public):
        assert same(decoded, public), (decoded, public)
        return
    for f in schema.fields:
        d = decoded["values"][f.name] if f.in_values else decoded[f.name]
        o = public["values"][f.name] if f.in_values else public[f.name]
        if f.kind == "num" and o is not None:
            assert within(d, o, f.decimals), (f.name, d, o)
        else:
            assert same(d, o), (f.name, d, o)
    assert decoded["kind"] == public["kind"]
