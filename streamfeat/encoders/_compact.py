"""The ``compact`` codec: schema-driven binary records, a few bytes each.

Theory of operation
-------------------
A compact body is the batch's records one after another (the count is in the batch header).
Each record is::

    varint type      0: self-describing fallback, i: schemas[i - 1]
    bitmap           ceil(bits / 8) bytes, little-endian: null, derived, flag, presence bits
    fields           in schema order, each as its kind says

State shared by the records of one batch (and rebuilt the same way by the decoder): the string
dictionary (:class:`~streamfeat.encoders._wire.StrTable`), the previous timestamp (every
``ts`` is a zigzag delta from the last one written), and the previous record's device. So a
batch pays for a device name, an item id or a timestamp's high bits once.

A record that does not fit its schema (a missing or extra key, a value of another type) is not
refused: it is written as type 0, the whole record self-described, and counted in
``stats["fallback"]``. Only what no codec can carry (a set, an int beyond 64 bits) raises
:class:`~streamfeat.errors.EncodeError`.
"""

from __future__ import annotations

import struct
from typing import Any

from streamfeat._compiled import compiled
from streamfeat.encoders._compact_walk import Misfit, Walk
from streamfeat.encoders._compact_writers import BatchWriter, writer_for
from streamfeat.encoders._ids import Decider, bucket_label, relabel_ids
from streamfeat.encoders._schema import NAME_KEY, Field, Schema, SchemaSet
from streamfeat.encoders._wire import (
    Reader,
    StrTable,
    StrTableReader,
    put_svarint,
    put_uvarint,
    read_value,
    write_value,
    zigzag,
)
from streamfeat.errors import DecodeError, EncodeError

__all__ = ["CompactDecoder", "CompactEncoder"]

_F64 = struct.Struct(">d")
_I64 = 1 << 63
_F_I64 = float(_I64)
_MISSING = object()


class _Misfit(Exception):
    """Internal: the record does not fit its schema; write it self-described instead."""


def _is_int(v: object) -> bool:
    return type(v) is int


class CompactEncoder:
    """Write records as compact bytes; one instance per batch (it holds the batch's state)."""

    __slots__ = (
        "buf", "decide", "last_ts", "prev", "schemas", "stats", "table", "walk", "writer",
    )  # fmt: skip

    def __init__(self, schemas: SchemaSet, decide: Decider | None, stats: dict[str, int]) -> None:
        self.schemas = schemas
        self.decide = decide
        self.stats = stats
        self.buf = bytearray()
        self.table = StrTable()
        self.last_ts = 0
        self.prev: dict[str, Any] = {}
        # without admission, the schema set's generated batch writer (same bytes as _record,
        # one record after another), or in the compiled core its compiled walk over typed
        # plans (faster there than the generated Python); both None: the reference walk
        self.writer: BatchWriter | None = None
        self.walk: Walk | None = None
        if decide is None:
            if compiled():
                self.walk = walk_for(schemas)
            else:
                self.writer = writer_for(schemas, _Misfit, _MISSING)

    def add(self, record: dict[str, Any]) -> None:
        """Append one record (``_`` attachments ignored).

        Raises:
            EncodeError: the record holds a value no codec can carry; the batch is unchanged.
        """
        if self.writer is not None or self.walk is not None:
            self.add_many([record])
            return
        idx, schema = self.schemas.lookup(record)
        if self.decide is not None:
            self.decide.reset()  # type: ignore[attr-defined]
        if schema is not None:
            # `prev` needs no copy: a record changes it only after its last refusal point
            mark, last_ts = len(self.table.strings), self.last_ts
            try:
                self.buf += self._record(record, idx, schema)
                return
            except (_Misfit, EncodeError):
                # roll the batch state back: the dropped bytes defined strings and moved ts
                self.table.rollback(mark)
                self.last_ts = last_ts
                self.stats["fallback"] = self.stats.get("fallback", 0) + 1
        self._fallback(record, schema)

    def add_many(self, records: list[dict[str, Any]]) -> None:
        """Append every record of ``records``, as :meth:`add` one by one does."""
        if self.writer is not None:
            self.writer(self, records)
            return
        if self.walk is not None:
            self._walk_many(self.walk, records)
            return
        for record in records:
            self.add(record)

    def _walk_many(self, walk: Walk, records: list[dict[str, Any]]) -> None:
        # add() one by one with the compiled walk; its bytes go to a list of ints, moved to
        # buf before a fallback writes there and at the end
        out: list[int] = []
        buf, table, stats = self.buf, self.table, self.stats
        try:
            for rec in records:
                t = walk.lookup(rec)
                if t == 0:
                    buf += bytes(out)
                    out.clear()
                    self._fallback(rec, None)
                    continue
                start, mark, last_ts = len(out), len(table.strings), self.last_ts
                try:
                    self.last_ts = walk.write(out, table, self.prev, last_ts, rec, t)
                    continue
                except (Misfit, EncodeError, KeyError):
                    # a missing key is a misfit too; roll back the record's bytes and state
                    del out[start:]
                    table.rollback(mark)
                    self.last_ts = last_ts
                    stats["fallback"] = stats.get("fallback", 0) + 1
                except BaseException:
                    del out[start:]  # no part of the record reaches buf
                    raise
                buf += bytes(out)
                out.clear()
                self._fallback(rec, self.schemas.schemas[t - 1])
        finally:
            buf += bytes(out)

    def _fallback(self, record: dict[str, Any], schema: Schema | None) -> None:
        rec = {k: v for k, v in record.items() if not (isinstance(k, str) and k[:1] == "_")}
        if schema is not None and self.decide is not None:
            rec = relabel_ids(rec, schema, self.decide)
        body = bytearray(b"\x00")
        mark = self.table.mark()
        try:
            write_value(body, self.table, rec)
        except EncodeError:
            self.table.rollback(mark)
            raise
        self.buf += body

    def _record(self, rec: dict[str, Any], idx: int, schema: Schema) -> bytearray:
        keys = rec.keys()
        if keys != schema.topkeys:
            # only `_` attachments may come on top of the schema's keys
            if not keys >= schema.topkeys:
                raise _Misfit
            for k in keys - schema.topkeys:
                if not (isinstance(k, str) and k[:1] == "_"):
                    raise _Misfit
        vals: Any = rec.get("values")
        if schema.values is not None and (
            type(vals) is not dict or vals.keys() != schema.valuekeys
        ):
            raise _Misfit
        if rec["kind"] != schema.kind:
            raise _Misfit
        body = bytearray()
        seen: dict[str, Any] = {}
        bits = 0
        decide = self.decide
        for f, qname, b in schema.plan:
            v = vals[f.name] if f.in_values else rec[f.name]
            kind = f.kind
            if kind == "id" and decide is not None and v is not None:
                v = self._admit(v)
            seen[qname] = v
            j = 0
            if f.nullable:
                if v is None:
                    bits |= 1 << b[0]
                    continue
                j = 1
            if f.derive:
                if self._derived(f, v, seen):
                    bits |= 1 << b[j]
                    if kind == "ts":
                        self.last_ts = v
                    continue
                j += 1
            # the common kinds inline (this loop is the encoder's hot path)
            if kind == "count":
                if type(v) is not int or v < 0:
                    raise _Misfit
                if v:
                    bits |= 1 << b[j]
                    if v <= 0x80:
                        body.append(v - 1)
                    else:
                        put_uvarint(body, v - 1)
            elif kind == "flag":
                if type(v) is not bool:
                    raise _Misfit
                if v:
                    bits |= 1 << b[j]
            elif kind == "ts":
                if type(v) is not int:
                    raise _Misfit
                put_svarint(body, v - self.last_ts)
                self.last_ts = v
            else:
                bits |= self._field(body, f, v, seen, b[j:])
        for qname in schema.prev_fields:
            self.prev[qname] = seen[qname]
        out = bytearray()
        if idx < 0x80:
            out.append(idx)
        else:
            put_uvarint(out, idx)
        out += bits.to_bytes(schema.nbytes, "little")
        out += body
        return out

    def _admit(self, v: Any) -> Any:
        if type(v) is str:
            b = self.decide(v)  # type: ignore[misc]
        elif type(v) is int:
            b = self.decide(str(v))  # type: ignore[misc]
        else:
            return v
        return v if b is None else _Bucket(b)

    def _derived(self, f: Field, v: Any, seen: dict[str, Any]) -> bool:
        op = f.derive[0]
        if op == "sum":
            a: Any = seen.get(f.derive[1])
            b: Any = f.derive[2] if type(f.derive[2]) is int else seen.get(f.derive[2])
            return _is_int(v) and _is_int(a) and _is_int(b) and bool(v == a + b)
        want = seen.get(f.derive[1], _MISSING) if op == "eq" else self.prev.get(f.qname, _MISSING)
        return want is not _MISSING and type(v) is type(want) and v == want

    def _field(
        self, body: bytearray, f: Field, v: Any, seen: dict[str, Any], b: tuple[int, ...]
    ) -> int:
        """Write ``v`` as kind ``f.kind``; return the bitmap bits it sets."""
        kind = f.kind
        if kind == "ts":
            if type(v) is not int:
                raise _Misfit
            put_svarint(body, v - self.last_ts)
            self.last_ts = v
        elif kind == "int":
            if type(v) is not int:
                raise _Misfit
            put_svarint(body, v)
        elif kind == "uint":
            if type(v) is not int or v < 0:
                raise _Misfit
            if f.ref:
                base = seen[f.ref]
                if type(base) is not int:
                    raise _Misfit
                put_svarint(body, v - base)
            else:
                put_uvarint(body, v)
        elif kind == "count":
            if type(v) is not int or v < 0:
                raise _Misfit
            if v:
                put_uvarint(body, v - 1)
                return 1 << b[0]
        elif kind == "flag":
            if type(v) is not bool:
                raise _Misfit
            return (1 << b[0]) if v else 0
        elif kind == "id":
            self._id(body, v)
        elif kind == "str":
            if type(v) is not str:
                raise _Misfit
            self.table.put(body, v)
        elif kind == "num":
            return self._num(body, f, v, b)
        elif kind == "top":
            self._top(body, f, v)
        else:  # any, map
            if kind == "map" and type(v) is not dict:
                raise _Misfit
            write_value(body, self.table, v)
        return 0

    def _id(self, body: bytearray, v: Any) -> None:
        # one varint: index << 2 (known string), bucket << 2 | 1, zigzag(int) << 2 | 2,
        # new string entry << 2 | 3
        if type(v) is str:
            self.table.put_id(body, v)
        elif type(v) is _Bucket:
            put_uvarint(body, (v.n << 2) | 1)
        elif type(v) is int:
            put_uvarint(body, (zigzag(v) << 2) | 2)
        else:
            raise _Misfit

    def _num(self, body: bytearray, f: Field, v: Any, b: tuple[int, ...]) -> int:
        if type(v) is int:
            put_svarint(body, v)
            return 0
        if type(v) is not float:
            raise _Misfit
        scale = 10**f.decimals
        x = v * scale
        # quantise only what fits 64 bits and keeps the stated precision (no inf, no nan,
        # no float so large that its nearest integers are further apart than the precision)
        if -_F_I64 < x < _F_I64:
            q = round(x)
            if abs(q / scale - v) <= 0.5 / scale:
                put_svarint(body, q)
                return 1 << b[0]
        body += _F64.pack(v)
        return 1 << b[1]

    def _top(self, body: bytearray, f: Field, v: Any) -> None:
        if type(v) is not list and type(v) is not tuple:
            raise _Misfit
        put_uvarint(body, len(v))
        of = f.of
        for pair in v:
            if (type(pair) is not list and type(pair) is not tuple) or len(pair) != 2:
                raise _Misfit
            value, count = pair
            if type(count) is not int or count < 0:
                raise _Misfit
            if of == "id":
                self._id(body, self._admit(value) if self.decide is not None else value)
            elif of == "str":
                if type(value) is not str:
                    raise _Misfit
                self.table.put(body, value)
            elif of == "ts":
                if type(value) is not int:
                    raise _Misfit
                put_svarint(body, value - self.last_ts)
                self.last_ts = value
            else:
                write_value(body, self.table, value)
            put_uvarint(body, count)


class _Bucket:
    """A refused id on its way to the wire (never a str, so never confused with one)."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __eq__(self, other: object) -> bool:
        return type(other) is _Bucket and other.n == self.n

    def __hash__(self) -> int:
        return hash(("bucket", self.n))


class CompactDecoder:
    """Read the records of one compact body (the inverse of :class:`CompactEncoder`)."""

    __slots__ = ("last_ts", "prev", "r", "schemas", "table")

    def __init__(self, schemas: SchemaSet, r: Reader) -> None:
        self.schemas = schemas
        self.r = r
        self.table = StrTableReader()
        self.last_ts = 0
        self.prev: dict[str, Any] = {}

    def records(self, count: int) -> list[dict[str, Any]]:
        """Read ``count`` records (each takes at least one byte, checked before looping)."""
        if count > self.r.left():
            msg = f"record count {count} is larger than the data left"
            raise self.r.fail(msg)
        return [self.record() for _ in range(count)]

    def record(self) -> dict[str, Any]:
        """Read one record."""
        r = self.r
        idx = r.uvarint()
        if idx == 0:
            rec = read_value(r, self.table)
            if type(rec) is not dict:
                msg = "a fallback record is not an object"
                raise r.fail(msg)
            return rec
        if idx > len(self.schemas.schemas):
            msg = f"record type {idx} is not in schema set {self.schemas.id:#010x}"
            raise r.fail(msg)
        schema = self.schemas.schemas[idx - 1]
        bits = int.from_bytes(r.take(schema.nbytes), "little")
        seen: dict[str, Any] = {}
        for f, qname, b in schema.plan:
            kind = f.kind
            if f.nullable or f.derive:
                seen[qname] = self._field(f, bits, b, seen)
            elif kind == "count":  # the common kinds inline: the decoder's hot path
                seen[qname] = r.uvarint() + 1 if bits >> b[0] & 1 else 0
            elif kind == "flag":
                seen[qname] = bool(bits >> b[0] & 1)
            elif kind == "ts":
                self.last_ts += r.svarint()
                seen[qname] = self.last_ts
            else:
                seen[qname] = self._field(f, bits, b, seen)
        for qname in schema.prev_fields:
            self.prev[qname] = seen[qname]
        return _assemble(schema, seen)

    def _field(self, f: Field, bits: int, b: tuple[int, ...], seen: dict[str, Any]) -> Any:
        r = self.r
        j = 0
        if f.nullable:
            if bits >> b[0] & 1:
                return None
            j = 1
        if f.derive:
            if bits >> b[j] & 1:
                v = self._derived(f, seen)
                if f.kind == "ts":
                    self.last_ts = v
                return v
            j += 1
        kind = f.kind
        if kind == "ts":
            self.last_ts += r.svarint()
            return self.last_ts
        if kind == "int":
            return r.svarint()
        if kind == "uint":
            if f.ref:
                base = seen[f.ref]
                if type(base) is not int:
                    msg = f"field {f.name} refers to a non-integer"
                    raise r.fail(msg)
                return base + r.svarint()
            return r.uvarint()
        if kind == "count":
            return r.uvarint() + 1 if bits >> b[j] & 1 else 0
        if kind == "flag":
            return bool(bits >> b[j] & 1)
        if kind == "id":
            return self._id()
        if kind == "str":
            return self.table.get(r)
        if kind == "num":
            if bits >> b[j + 1] & 1:
                return r.f64()
            if bits >> b[j] & 1:
                return r.svarint() / 10**f.decimals
            return r.svarint()
        if kind == "top":
            return self._top(f)
        v = read_value(r, self.table)
        if kind == "map" and type(v) is not dict:
            msg = f"field {f.name} is not an object"
            raise r.fail(msg)
        return v

    def _derived(self, f: Field, seen: dict[str, Any]) -> Any:
        op = f.derive[0]
        if op == "sum":
            a = seen.get(f.derive[1])
            b = f.derive[2] if type(f.derive[2]) is int else seen.get(f.derive[2])
            if type(a) is not int or type(b) is not int:
                msg = f"derived field {f.name} refers to a non-integer"
                raise self.r.fail(msg)
            return a + b
        want = seen.get(f.derive[1], _MISSING) if op == "eq" else self.prev.get(f.qname, _MISSING)
        if want is _MISSING:
            msg = f"derived field {f.name} has nothing to copy"
            raise self.r.fail(msg)
        return want

    def _id(self) -> Any:
        r = self.r
        x = r.uvarint()
        tag = x & 3
        if tag == 0:
            return self.table.at(r, x >> 2)
        if tag == 1:
            return bucket_label(x >> 2)
        if tag == 2:
            z = x >> 2
            return (z >> 1) ^ -(z & 1)
        return self.table.define(r, x >> 2)

    def _top(self, f: Field) -> list[list[Any]]:
        r = self.r
        out: list[list[Any]] = []
        for _ in range(r.count(2)):
            if f.of == "id":
                value = self._id()
            elif f.of == "str":
                value = self.table.get(r)
            elif f.of == "ts":
                self.last_ts += r.svarint()
                value = self.last_ts
            else:
                value = read_value(r, self.table)
            out.append([value, r.uvarint()])
        return out


def _assemble(schema: Schema, seen: dict[str, Any]) -> dict[str, Any]:
    rec: dict[str, Any] = {"kind": schema.kind, NAME_KEY[schema.kind]: schema.name}
    for key in schema.layout[2:]:
        if key == "values" and schema.values is not None:
            rec["values"] = {k: seen["v." + k] for k in schema.values}
        else:
            rec[key] = seen[key]
    return rec


def walk_for(schemas: SchemaSet) -> Walk:
    """Return the compiled walk's plans of ``schemas`` (built on first use, then kept)."""
    cached: Walk | None = schemas.walk
    if cached is None:
        cached = Walk(schemas)
        schemas.walk = cached
    return cached


def encode_compact(
    records: list[dict[str, Any]], schemas: SchemaSet, decide: Decider | None, stats: dict[str, int]
) -> bytes:
    """Return the compact body of ``records``."""
    enc = CompactEncoder(schemas, decide, stats)
    enc.add_many(records)
    return bytes(enc.buf)


def decode_compact(data: bytes, pos: int, count: int, schemas: SchemaSet) -> list[dict[str, Any]]:
    """Return the ``count`` records of the compact body starting at ``data[pos]``.

    Raises:
        DecodeError: corrupt, truncated, or with bytes left over.
    """
    r = Reader(data, pos)
    out = CompactDecoder(schemas, r).records(count)
    if r.left():
        msg = f"{r.left()} bytes left over after {count} records"
        raise DecodeError(msg)
    return out
