"""The ``compact`` codec's batch writer: generated once per schema set, no dispatch per field.

:meth:`CompactEncoder._record <streamfeat.encoders._compact.CompactEncoder>` walks a schema's
plan field by field and dispatches on each field's kind; it is the reference. Here the same
walk is done once, when a schema set is first used, and written out as one Python function
(``exec`` of generated source, as :mod:`dataclasses` builds ``__init__``) that loops over a
batch's records and writes each by straight-line code for its schema:

* the schema is found by two dictionary look-ups (kind, then name) and its code by a few
  integer comparisons;
* each field is read by its constant key into a local variable (``v0``, ``v1``, ...), and the
  fields that refer to it (``eq`` and ``sum`` predictions, ``uint`` deltas) read that local,
  not a dictionary of values seen;
* the batch's last timestamp and the previous record's values (``prev`` predictions) are
  locals for the whole batch, written back to the encoder when the function returns or raises;
* the record goes straight into the batch's one ``bytearray``: its type byte and a zeroed
  bitmap are one constant, the bitmap is patched in place once every bit is known;
* varints below 2**28 are one to four ``append`` calls, new string-dictionary entries are
  written inline (the canonical-decimal test by ``str`` methods, not a regex); bit masks,
  scales and tolerances are constants;
* the schema's keys are proved present by reading them (a missing one raises ``KeyError``, a
  misfit), so checking the keys costs a length comparison; a record with one known attachment
  (``_raw_bytes``, ``_events``) on top is recognised by one look-up, any other by a loop.

The rare kinds (``top`` lists of other than ids, ids that are not strings) call the
reference's own code. A record that does not fit is cut off the buffer, the string table and
the timestamp rolled back, and it goes to ``CompactEncoder._fallback``, as with the reference.
The bytes written, the batch state left behind, the misfits and the errors are the reference's
(``tests/property/test_encoders_writers.py`` compares both on random batches).

Only the encoder without id admission uses it; with admission every id goes through the
decider first, and the reference path runs. The compiled core uses it too: the generated
function is Python, and it writes faster than the compiled reference walk (docs/performance.md).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

from streamfeat.encoders._schema import NAME_KEY, Field, Schema, SchemaSet
from streamfeat.encoders._wire import T_INT, T_SMALL, put_svarint, put_uvarint, write_value
from streamfeat.errors import EncodeError

__all__ = ["ATTACHMENTS", "BatchWriter", "build_writer", "writer_for", "writer_source"]

#: ``writer(encoder, records) -> None``: appends ``records`` to ``encoder.buf`` as
#: :meth:`CompactEncoder.add` would, one by one (a record that does not fit its schema goes
#: through ``encoder._fallback``; an ``EncodeError`` from there propagates, the batch state
#: kept consistent).
BatchWriter = Callable[[Any, Sequence[dict[str, Any]]], None]

#: the attachments the engine puts on records (checked by one lookup; others by a loop)
ATTACHMENTS = ("_raw_bytes", "_events")
_F64 = struct.Struct(">d")


def writer_for(schemas: SchemaSet, misfit: type[Exception], missing: object) -> BatchWriter:
    """Return the batch writer of ``schemas`` (built on first use, then kept).

    ``misfit`` is the exception a record that does not fit raises; ``missing`` the reference's
    "no previous value" marker.
    """
    cached: BatchWriter | None = schemas.writer
    if cached is None:
        cached = build_writer(schemas, misfit, missing)
        schemas.writer = cached
    return cached


def _uvar(lines: list[str], pad: str, expr: str) -> None:
    # put_uvarint inline for a value known to be >= 0 (above 2**64 it raises EncodeError)
    if expr.isidentifier():
        _varint(lines, pad, expr, f"put_uvarint(buf, {expr})")
    else:
        lines += [f"{pad}n = {expr}"]
        _varint(lines, pad, "n", "put_uvarint(buf, n)")


def _svar(lines: list[str], pad: str, expr: str) -> None:
    # put_svarint inline. Zigzag is (d << 1) ^ (d >> 63) inside [-2**63, 2**63); outside it the
    # same expression is 2**64 or more, so `n` below 2**28 means d in range, and past that
    # put_svarint checks the range and raises EncodeError as the reference does
    lines += [f"{pad}d = {expr}", f"{pad}n = (d << 1) ^ (d >> 63)"]
    _varint(lines, pad, "n", "put_svarint(buf, d)")


def _varint(lines: list[str], pad: str, n: str, slow: str) -> None:
    # LEB128 of `n` in one to four appends (item ids defined as numbers take four); longer
    # ones through the reference's code
    lines += [
        f"{pad}if {n} < 0x80:",
        f"{pad}    ap({n})",
        f"{pad}elif {n} < 0x4000:",
        f"{pad}    ap(({n} & 0x7F) | 0x80)",
        f"{pad}    ap({n} >> 7)",
        f"{pad}elif {n} < 0x200000:",
        f"{pad}    ap(({n} & 0x7F) | 0x80)",
        f"{pad}    ap((({n} >> 7) & 0x7F) | 0x80)",
        f"{pad}    ap({n} >> 14)",
        f"{pad}elif {n} < 0x10000000:",
        f"{pad}    ap(({n} & 0x7F) | 0x80)",
        f"{pad}    ap((({n} >> 7) & 0x7F) | 0x80)",
        f"{pad}    ap((({n} >> 14) & 0x7F) | 0x80)",
        f"{pad}    ap({n} >> 21)",
        f"{pad}else:",
        f"{pad}    {slow}",
    ]


def _define(lines: list[str], pad: str, v: str, shift: int, tag: int) -> None:
    # StrTable._define inline: a canonical decimal of up to 18 digits as a number, any other
    # string as its UTF-8 length and bytes (the predicate is _DECIMAL_RE without a regex)
    lines += [
        f"{pad}index[{v}] = len(strings)",
        f"{pad}strings.append({v})",
        f"{pad}if {v}.isascii() and {v}.isdigit() and len({v}) <= 18"
        f" and ({v}[0] != '0' or len({v}) == 1):",
    ]
    _uvar(lines, pad + "    ", f"(((int({v}) << 1) | 1) << {shift}) | {tag}")
    lines += [f"{pad}else:", f"{pad}    raw = {v}.encode('utf-8', 'surrogatepass')"]
    _uvar(lines, pad + "    ", f"((len(raw) << 1) << {shift}) | {tag}")
    lines.append(f"{pad}    buf += raw")


def _id(lines: list[str], pad: str, v: str) -> None:
    # StrTable.put_id / CompactEncoder._id: a known string is index << 2, a new one defined
    # with tag 3
    lines += [
        f"{pad}if type({v}) is str:",
        f"{pad}    i = index.get({v})",
        f"{pad}    if i is None:",
    ]
    _define(lines, pad + "        ", v, 2, 3)
    lines += [f"{pad}    else:"]
    _uvar(lines, pad + "        ", "i << 2")
    lines += [f"{pad}else:", f"{pad}    enc._id(buf, {v})"]


def _kind(
    lines: list[str],
    pad: str,
    k: int,
    f: Field,
    b: tuple[int, ...],
    ref: str,
    c: str,
    ref_int: bool = False,
) -> None:
    """The code writing ``v{k}`` as ``f.kind``, the bits ``b`` left to it (constants ``{c}*``)."""
    kind = f.kind
    v = f"v{k}"
    if kind == "count":
        lines += [
            f"{pad}if type({v}) is not int or {v} < 0:",
            f"{pad}    raise Misfit",
            f"{pad}if {v}:",
            f"{pad}    bits |= {1 << b[0]}",
            f"{pad}    if {v} <= 0x80:",
            f"{pad}        ap({v} - 1)",
            f"{pad}    else:",
            f"{pad}        put_uvarint(buf, {v} - 1)",
        ]
    elif kind == "flag":
        lines += [
            f"{pad}if type({v}) is not bool:",
            f"{pad}    raise Misfit",
            f"{pad}if {v}:",
            f"{pad}    bits |= {1 << b[0]}",
        ]
    elif kind == "ts":
        lines += [f"{pad}if type({v}) is not int:", f"{pad}    raise Misfit"]
        _svar(lines, pad, f"{v} - lt")
        lines.append(f"{pad}lt = {v}")
    elif kind == "int":
        lines += [f"{pad}if type({v}) is not int:", f"{pad}    raise Misfit"]
        _svar(lines, pad, v)
    elif kind == "uint":
        lines += [f"{pad}if type({v}) is not int or {v} < 0:", f"{pad}    raise Misfit"]
        if f.ref:
            if not ref_int:
                lines += [f"{pad}if type({ref}) is not int:", f"{pad}    raise Misfit"]
            _svar(lines, pad, f"{v} - {ref}")
        else:
            _uvar(lines, pad, v)
    elif kind == "str":
        lines += [
            f"{pad}if type({v}) is not str:",
            f"{pad}    raise Misfit",
            f"{pad}i = index.get({v})",
            f"{pad}if i is None:",
            f"{pad}    i = len(strings)",
        ]
        _uvar(lines, pad + "    ", "i")
        _define(lines, pad + "    ", v, 0, 0)
        lines += [f"{pad}else:"]
        _uvar(lines, pad + "    ", "i")
    elif kind == "id":
        _id(lines, pad, v)
    elif kind == "num":
        # CompactEncoder._num, with the scale and the tolerance as constants
        scale = 10**f.decimals
        lines += [f"{pad}if type({v}) is int:"]
        _svar(lines, pad + "    ", v)
        lines += [
            f"{pad}elif type({v}) is not float:",
            f"{pad}    raise Misfit",
            f"{pad}else:",
            f"{pad}    x = {v} * {scale}",
            f"{pad}    if -F_I64 < x < F_I64 and abs(round(x) / {scale} - {v}) <= {c}HALF{k}:",
            f"{pad}        put_svarint(buf, round(x))",
            f"{pad}        bits |= {1 << b[0]}",
            f"{pad}    else:",
            f"{pad}        buf += F64.pack({v})",
            f"{pad}        bits |= {1 << b[1]}",
        ]
    elif kind == "top" and f.of == "id":
        # CompactEncoder._top for ids
        lines += [
            f"{pad}if type({v}) is not list and type({v}) is not tuple:",
            f"{pad}    raise Misfit",
        ]
        _uvar(lines, pad, f"len({v})")
        lines += [
            f"{pad}for pair in {v}:",
            f"{pad}    if (type(pair) is not list and type(pair) is not tuple) or len(pair) != 2:",
            f"{pad}        raise Misfit",
            f"{pad}    value, count = pair",
            f"{pad}    if type(count) is not int or count < 0:",
            f"{pad}        raise Misfit",
        ]
        _id(lines, pad + "    ", "value")
        _uvar(lines, pad + "    ", "count")
    elif kind == "map":
        lines += [
            f"{pad}if type({v}) is not dict:",
            f"{pad}    raise Misfit",
            f"{pad}write_value(buf, table, {v})",
        ]
    elif kind == "any":
        # write_value inline for an int of one byte (T_SMALL + v) or a 64-bit one (T_INT)
        lines += [
            f"{pad}if type({v}) is int and 0 <= {v} <= {255 - T_SMALL}:",
            f"{pad}    ap({v} + {T_SMALL})",
            f"{pad}elif type({v}) is int and -0x8000000000000000 <= {v} < 0x8000000000000000:",
            f"{pad}    ap({T_INT})",
        ]
        _svar(lines, pad + "    ", v)
        lines += [f"{pad}else:", f"{pad}    write_value(buf, table, {v})"]
    else:  # top of str, ts, any: the reference's own code, which keeps enc.last_ts
        lines += [
            f"{pad}enc.last_ts = lt",
            f"{pad}enc._top(buf, {c}F{k}, {v})",
            f"{pad}lt = enc.last_ts",
        ]


def _derived(
    lines: list[str], pad: str, k: int, f: Field, local: dict[str, str], prevs: dict[str, str]
) -> None:
    """The condition under which ``v{k}`` is predicted (CompactEncoder._derived inline)."""
    v = f"v{k}"
    op = f.derive[0]
    if op == "sum":
        a = local.get(f.derive[1], "None")
        b = str(f.derive[2]) if type(f.derive[2]) is int else local.get(f.derive[2], "None")
        lines.append(
            f"{pad}if type({v}) is int and type({a}) is int and type({b}) is int"
            f" and {v} == {a} + {b}:"
        )
        return
    # eq: a field before (or MISSING); prev: the batch's previous value of this field (or
    # MISSING). type(v) is never object, MISSING's type: no kind's value is a bare object
    w = local.get(f.derive[1], "MISSING") if op == "eq" else prevs[f.qname]
    lines.append(f"{pad}if type({v}) is type({w}) and {v} == {w}:")


def _record(schema: Schema, idx: int, c: str, prevs: dict[str, str]) -> list[str]:
    """The code writing ``rec`` as ``schema`` (type ``idx``), its constants named ``{c}*``."""
    head = bytearray()
    put_uvarint(head, idx)
    at = len(head)  # the bitmap's offset in the record
    values = schema.values is not None
    top = {f.name for f in schema.fields if not f.in_values}
    top |= {"kind", NAME_KEY[schema.kind]} | ({"values"} if values else set())
    inner = {f.name for f in schema.fields if f.in_values}
    # every schema key is read below (a missing one raises KeyError), so counting the keys
    # is checking them
    keys_read = top == schema.topkeys and (not values or set(schema.values or ()) == inner)
    lines = []
    if keys_read:
        attached = [a for a in ATTACHMENTS if a not in schema.topkeys]
        if schema.kind == "trigger":
            attached.reverse()  # trigger records carry `_events`, the others `_raw_bytes`
        known = " or ".join(f"{a!r} in rec" for a in attached) or "False"
        ntop = len(schema.topkeys)
        lines += [
            "nk = len(rec)",
            f"if nk != {ntop} and not (nk == {ntop + 1} and ({known})):",
            f"    extra_keys(rec, {c}TOPKEYS)",
        ]
    else:
        lines += [
            "keys = rec.keys()",
            f"if keys != {c}TOPKEYS:",
            f"    if not keys >= {c}TOPKEYS:",
            "        raise Misfit",
            f"    extra_keys(rec, {c}TOPKEYS)",
        ]
    if values:
        lines += ["vals = rec['values']", "if type(vals) is not dict:", "    raise Misfit"]
        if keys_read:
            lines += [f"if len(vals) != {len(schema.valuekeys)}:", "    raise Misfit"]
        else:
            lines += [f"if vals.keys() != {c}VALUEKEYS:", "    raise Misfit"]
    elif inner:
        lines.append("vals = rec.get('values')")
    # rec["kind"] == schema.kind: the lookup found the schema by it
    lines += [f"buf += {bytes(head) + bytes(schema.nbytes)!r}", "bits = 0"]
    local: dict[str, str] = {}
    ints: set[str] = set()
    for k, (f, qname, b) in enumerate(schema.plan):
        pad = ""
        lines.append(f"v{k} = {'vals' if f.in_values else 'rec'}[{f.name!r}]")
        local[qname] = f"v{k}"  # the reference's seen[qname], set before the field is written
        j = 0
        if f.nullable:
            lines += [f"if v{k} is None:", f"    bits |= {1 << b[0]}", "else:"]
            pad += "    "
            j = 1
        if f.derive:
            _derived(lines, pad, k, f, local, prevs)
            lines.append(f"{pad}    bits |= {1 << b[j]}")
            if f.kind == "ts":
                lines.append(f"{pad}    lt = v{k}")
            lines.append(f"{pad}else:")
            pad += "    "
            j += 1
        _kind(lines, pad, k, f, b[j:], local.get(f.ref, "None"), c, f.ref in ints)
        if f.kind in ("int", "uint", "count", "ts") and not f.nullable and not f.derive:
            ints.add(qname)  # written only when an int: later fields need not check it
    # past the last refusal point: the batch state moves on
    lines += [f"{prevs[q]} = {local[q]}" for q in schema.prev_fields]
    # the bitmap, now that every bit is known
    if schema.nbytes == 1:
        lines.append(f"buf[start + {at}] = bits")
    elif schema.nbytes == 2:
        lines += [f"buf[start + {at}] = bits & 0xFF", f"buf[start + {at + 1}] = bits >> 8"]
    elif schema.nbytes:
        n = schema.nbytes
        lines.append(f"buf[start + {at} : start + {at + n}] = bits.to_bytes({n}, 'little')")
    return lines


def _dispatch(lines: list[str], pad: str, bodies: list[list[str]], lo: int, hi: int) -> None:
    # the record code of type t, lo <= t < hi, found by halving (a few comparisons for any
    # number of types)
    if hi - lo == 1:
        lines += [pad + line for line in bodies[lo - 1]]
        return
    mid = (lo + hi) // 2
    lines.append(f"{pad}if t < {mid}:")
    _dispatch(lines, pad + "    ", bodies, lo, mid)
    lines.append(f"{pad}else:")
    _dispatch(lines, pad + "    ", bodies, mid, hi)


def writer_source(schemas: SchemaSet) -> str:
    """Return the source of the batch writer of ``schemas``."""
    prevs: dict[str, str] = {}
    for s in schemas.schemas:
        for q in s.prev_fields:
            prevs.setdefault(q, f"pv{len(prevs)}")
    bodies = [_record(s, i + 1, f"S{i + 1}", prevs) for i, s in enumerate(schemas.schemas)]
    lines = [
        "def write_all(enc, records):",
        "    buf = enc.buf",
        "    ap = buf.append",
        "    table = enc.table",
        "    index = table.index",
        "    strings = table.strings",
        "    stats = enc.stats",
        "    fallback = enc._fallback",
        "    prev = enc.prev",
        "    lt = enc.last_ts",
    ]
    lines += [f"    {v} = prev.get({q!r}, MISSING)" for q, v in prevs.items()]
    lines += [
        "    try:",
        "        for rec in records:",
        # SchemaSet.lookup inline
        "            kind = rec.get('kind')",
        "            by_name = BY_KIND.get(kind) if isinstance(kind, str) else None",
        "            if by_name is None:",
        "                fallback(rec, None)",
        "                continue",
        "            name = rec.get(by_name[0])",
        "            t = by_name[1].get(name) if isinstance(name, str) else None",
        "            if t is None:",
        "                fallback(rec, None)",
        "                continue",
        "            start = len(buf)",
        "            mark = len(strings)",
        "            lt0 = lt",
        "            try:",
    ]
    if bodies:
        _dispatch(lines, " " * 16, bodies, 1, len(bodies) + 1)
    lines += [
        "                continue",
        "            except (Misfit, EncodeError, KeyError):",
        # a missing key is a misfit; roll back the record's bytes, strings and timestamps
        "                del buf[start:]",
        "                table.rollback(mark)",
        "                lt = lt0",
        "                stats['fallback'] = stats.get('fallback', 0) + 1",
        "            fallback(rec, SCHEMAS[t - 1])",
        "    finally:",
        "        enc.last_ts = lt",
    ]
    for q, v in prevs.items():
        lines += [f"        if {v} is not MISSING:", f"            prev[{q!r}] = {v}"]
    return "\n".join(lines) + "\n"


def build_writer(schemas: SchemaSet, misfit: type[Exception], missing: object) -> BatchWriter:
    """Generate the batch writer of ``schemas``."""

    def extra_keys(rec: dict[str, Any], topkeys: frozenset[str]) -> None:
        # only `_` attachments may come on top of the schema's keys
        for k in rec.keys() - topkeys:
            if not (isinstance(k, str) and k[:1] == "_"):
                raise misfit

    # SchemaSet.lookup as two dictionaries: kind -> (name key, name -> type index)
    by_kind: dict[str, tuple[str, dict[str, int]]] = {k: (n, {}) for k, n in NAME_KEY.items()}
    for (kind, name), (i, _) in schemas.by_type.items():
        by_kind[kind][1][name] = i
    ns: dict[str, Any] = {
        "Misfit": misfit,
        "MISSING": missing,
        "EncodeError": EncodeError,
        "BY_KIND": by_kind,
        "SCHEMAS": schemas.schemas,
        "extra_keys": extra_keys,
        "put_uvarint": put_uvarint,
        "put_svarint": put_svarint,
        "write_value": write_value,
        "F_I64": float(1 << 63),
        "F64": _F64,
    }
    for i, s in enumerate(schemas.schemas):
        c = f"S{i + 1}"
        ns[c + "TOPKEYS"] = s.topkeys
        ns[c + "VALUEKEYS"] = s.valuekeys
        for k, f in enumerate(s.fields):
            ns[f"{c}F{k}"] = f
            ns[f"{c}HALF{k}"] = 0.5 / 10**f.decimals
    source = writer_source(schemas)
    exec(compile(source, f"<compact writer {schemas.id:#010x}>", "exec"), ns)
    fn: BatchWriter = ns["write_all"]
    return fn
