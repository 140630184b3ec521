"""Specialised record writers for the ``compact`` codec, built once per schema set.

:meth:`CompactEncoder._record <streamfeat.encoders._compact.CompactEncoder>` walks a schema's
plan field by field and dispatches on each field's kind; it is the reference. Here the same
walk is done once, when a schema set is first used, and written out as one Python function per
schema (``exec`` of generated source, as :mod:`dataclasses` builds ``__init__``): field names,
bit masks and kinds become constants, the common kinds (``count``, ``flag``, ``ts``, ``int``,
``str``, ``id``) are inlined with their one-byte fast paths, and the rare ones (``num``,
``top``, ``uint``, ``any``, ``map``, derived values) call the reference's own methods. The
bytes written, the batch state left behind and the misfits refused are the reference's
(``tests/property/test_encoders_writers.py`` compares both on random records).

Only the encoder without id admission uses them; with admission every id goes through the
decider first, and the reference path runs.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from streamfeat.encoders._schema import Field, Schema, SchemaSet
from streamfeat.encoders._wire import put_svarint, put_uvarint

__all__ = ["Writer", "build_writers", "writers_for"]

#: ``writer(encoder, record) -> bytearray``: the record's bytes, or ``_Misfit`` raised.
Writer = Callable[[Any, dict[str, Any]], bytearray]


def writers_for(schemas: SchemaSet, misfit: type[Exception], missing: object) -> dict[int, Writer]:
    """Return the writers of ``schemas`` by type index (built on first use, then kept).

    ``misfit`` is the exception a record that does not fit raises; ``missing`` the reference's
    "no previous value" marker.
    """
    cached: dict[int, Writer] | None = schemas.writers
    if cached is None:
        cached = build_writers(schemas, misfit, missing)
        schemas.writers = cached
    return cached


def build_writers(
    schemas: SchemaSet, misfit: type[Exception], missing: object
) -> dict[int, Writer]:
    """Generate one writer per schema of ``schemas``."""
    return {i + 1: _build(s, i + 1, misfit, missing) for i, s in enumerate(schemas.schemas)}


def _svarint(lines: list[str], pad: str, expr: str) -> None:
    # put_svarint inline (zigzag then LEB128); out of range, the reference raises
    lines += [
        f"{pad}d = {expr}",
        f"{pad}if -0x40 <= d < 0x40:",
        f"{pad}    body.append(d << 1 if d >= 0 else ((-d) << 1) - 1)",
        f"{pad}elif -0x8000000000000000 <= d < 0x8000000000000000:",
        f"{pad}    n = d << 1 if d >= 0 else ((-d) << 1) - 1",
        f"{pad}    while n > 0x7F:",
        f"{pad}        body.append((n & 0x7F) | 0x80)",
        f"{pad}        n >>= 7",
        f"{pad}    body.append(n)",
        f"{pad}else:",
        f"{pad}    put_svarint(body, d)",
    ]


def _kind(lines: list[str], pad: str, k: int, f: Field, b: tuple[int, ...]) -> None:
    """The code writing ``v`` as ``f.kind``, the bits ``b`` left to it."""
    kind = f.kind
    if kind == "count":
        lines += [
            f"{pad}if type(v) is not int or v < 0:",
            f"{pad}    raise Misfit",
            f"{pad}if v:",
            f"{pad}    bits |= {1 << b[0]}",
            f"{pad}    if v <= 0x80:",
            f"{pad}        body.append(v - 1)",
            f"{pad}    else:",
            f"{pad}        put_uvarint(body, v - 1)",
        ]
    elif kind == "flag":
        lines += [
            f"{pad}if type(v) is not bool:",
            f"{pad}    raise Misfit",
            f"{pad}if v:",
            f"{pad}    bits |= {1 << b[0]}",
        ]
    elif kind == "ts":
        lines += [f"{pad}if type(v) is not int:", f"{pad}    raise Misfit"]
        _svarint(lines, pad, "v - enc.last_ts")
        lines.append(f"{pad}enc.last_ts = v")
    elif kind == "int":
        lines += [f"{pad}if type(v) is not int:", f"{pad}    raise Misfit"]
        _svarint(lines, pad, "v")
    elif kind == "str":
        lines += [
            f"{pad}if type(v) is not str:",
            f"{pad}    raise Misfit",
            f"{pad}i = index.get(v)",
            f"{pad}if i is not None and i < 0x80:",
            f"{pad}    body.append(i)",
            f"{pad}else:",
            f"{pad}    table.put(body, v)",
        ]
    elif kind == "id":
        lines += [
            f"{pad}if type(v) is str:",
            f"{pad}    i = index.get(v)",
            f"{pad}    if i is not None and i < 0x20:",
            f"{pad}        body.append(i << 2)",
            f"{pad}    else:",
            f"{pad}        table.put_id(body, v)",
            f"{pad}else:",
            f"{pad}    enc._id(body, v)",
        ]
    elif kind == "num":
        # CompactEncoder._num, with the scale and the tolerance as constants
        lines += [f"{pad}if type(v) is int:"]
        _svarint(lines, pad + "    ", "v")
        lines += [
            f"{pad}elif type(v) is not float:",
            f"{pad}    raise Misfit",
            f"{pad}else:",
            f"{pad}    x = v * {10**f.decimals}",
            f"{pad}    if -F_I64 < x < F_I64 and abs(round(x) / {10**f.decimals} - v) <= HALF{k}:",
            f"{pad}        put_svarint(body, round(x))",
            f"{pad}        bits |= {1 << b[0]}",
            f"{pad}    else:",
            f"{pad}        body += F64.pack(v)",
            f"{pad}        bits |= {1 << b[1]}",
        ]
    else:  # top, uint, any, map: the reference's own code
        lines.append(f"{pad}bits |= enc._field(body, F{k}, v, seen, {b!r})")


def _build(schema: Schema, idx: int, misfit: type[Exception], missing: object) -> Writer:
    uses_seen = bool(schema.prev_fields) or any(f.derive or f.ref for f in schema.fields)
    lines = [
        "def write(enc, rec):",
        "    keys = rec.keys()",
        "    if keys != TOPKEYS:",
        "        if not keys >= TOPKEYS:",
        "            raise Misfit",
        "        for k in keys - TOPKEYS:",
        "            if not (isinstance(k, str) and k[:1] == '_'):",
        "                raise Misfit",
    ]
    if schema.values is not None:
        lines += [
            "    vals = rec.get('values')",
            "    if type(vals) is not dict or vals.keys() != VALUEKEYS:",
            "        raise Misfit",
        ]
    elif any(f.in_values for f in schema.fields):
        lines.append("    vals = rec.get('values')")
    lines += [
        "    if rec['kind'] != KIND:",
        "        raise Misfit",
        "    body = bytearray()",
        "    bits = 0",
        "    table = enc.table",
        "    index = table.index",
        "    seen = {}" if uses_seen else "    seen = NOSEEN",
    ]
    consts: dict[str, Any] = {}
    for k, (f, qname, b) in enumerate(schema.plan):
        consts[f"F{k}"] = f
        consts[f"HALF{k}"] = 0.5 / 10**f.decimals
        pad = "    "
        lines.append(f"{pad}v = {'vals' if f.in_values else 'rec'}[{f.name!r}]")
        if uses_seen:
            lines.append(f"{pad}seen[{qname!r}] = v")
        j = 0
        if f.nullable:
            lines += [f"{pad}if v is None:", f"{pad}    bits |= {1 << b[0]}", f"{pad}else:"]
            pad += "    "
            j = 1
        if f.derive:
            op = f.derive[0]
            if op == "sum":
                lines.append(f"{pad}if enc._derived(F{k}, v, seen):")
            else:  # eq, prev: CompactEncoder._derived inline
                src = "seen" if op == "eq" else "enc.prev"
                key = f.derive[1] if op == "eq" else f.qname
                lines += [
                    f"{pad}w = {src}.get({key!r}, MISSING)",
                    f"{pad}if w is not MISSING and type(v) is type(w) and v == w:",
                ]
            lines.append(f"{pad}    bits |= {1 << b[j]}")
            if f.kind == "ts":
                lines.append(f"{pad}    enc.last_ts = v")
            lines.append(f"{pad}else:")
            pad += "    "
            j += 1
        _kind(lines, pad, k, f, b[j:])
    for qname in schema.prev_fields:
        lines.append(f"    enc.prev[{qname!r}] = seen[{qname!r}]")
    head = bytearray()
    put_uvarint(head, idx)
    lines += [
        f"    out = bytearray({bytes(head)!r})",
        f"    out += bits.to_bytes({schema.nbytes}, 'little')",
        "    out += body",
        "    return out",
    ]
    ns: dict[str, Any] = {
        "Misfit": misfit,
        "TOPKEYS": schema.topkeys,
        "VALUEKEYS": schema.valuekeys,
        "KIND": schema.kind,
        "NOSEEN": {},
        "put_uvarint": put_uvarint,
        "put_svarint": put_svarint,
        "MISSING": missing,
        "F_I64": float(1 << 63),
        "F64": struct.Struct(">d"),
        **consts,
    }
    source = "\n".join(lines) + "\n"
    exec(compile(source, f"<compact writer {schema.kind}:{schema.name}>", "exec"), ns)
    fn: Writer = ns["write"]
    return fn
