"""The ``compact`` codec's writer for the compiled core: a walk over typed field plans.

The generated batch writer (``_compact_writers.py``) is Python source and stays interpreted
even in the compiled core. This module is the same walk written for mypyc instead: each
schema becomes a list of :class:`_Op` (a field's kind, bits and references as small ints),
the record's fields are read in schema order into a list, and the bytes go to a ``list`` of
ints (``list.append`` is a C call in compiled code; ``bytearray.append`` is not), turned into
bytes once per batch. Integer kinds run on machine integers.

It writes what :meth:`CompactEncoder._record <streamfeat.encoders._compact.CompactEncoder>`,
the reference, writes: the same bytes, the same string table and timestamps, the same misfits
(``tests/property/test_encoders_writers.py`` compares the three on random batches). Rare kinds
(``top`` lists of other than ids, ``any`` and ``map`` values that are not small ints) write
through the reference's own functions into a scratch ``bytearray``.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from streamfeat.encoders._schema import NAME_KEY, Schema, SchemaSet
from streamfeat.encoders._wire import StrTable, write_value
from streamfeat.errors import EncodeError

__all__ = ["Misfit", "Walk"]

K_COUNT: Final = 0
K_FLAG: Final = 1
K_TS: Final = 2
K_INT: Final = 3
K_UINT: Final = 4
K_STR: Final = 5
K_ID: Final = 6
K_NUM: Final = 7
K_TOP_ID: Final = 8
K_VALUE: Final = 9  # any, map: self-describing
K_TOP: Final = 10  # top of str, ts, any
_KINDS: Final = {
    "count": K_COUNT, "flag": K_FLAG, "ts": K_TS, "int": K_INT, "uint": K_UINT, "str": K_STR,
    "id": K_ID, "num": K_NUM, "any": K_VALUE, "map": K_VALUE,
}  # fmt: skip
D_NONE: Final = 0
D_SUM: Final = 1
D_EQ: Final = 2
D_PREV: Final = 3
_I64: Final = 1 << 63
_U64: Final = 1 << 64
_F_I64: Final = float(1 << 63)
_SHORT: Final = 1 << 60  # below the compiled core's machine-sized ints (2**62)
_F64 = struct.Struct(">d")


_NO_VALUES: Final[dict[str, Any]] = {}


class Misfit(Exception):
    """The record does not fit its schema (written self-described instead)."""


class _Op:
    """One field: where to read it, how to write it, which bits it owns."""

    def __init__(self, schema: Schema, i: int) -> None:
        f, qname, b = schema.plan[i]
        pos = {q: k for k, (_, q, _) in enumerate(schema.plan)}
        self.key: str = f.name
        self.qname: str = qname
        self.in_values: bool = f.in_values
        kind = _KINDS.get(f.kind, K_TOP)
        if f.kind == "top":
            kind = K_TOP_ID if f.of == "id" else K_TOP
        self.kind: int = kind
        self.nullable: bool = f.nullable
        j = 0
        self.null_bit: int = 0
        if f.nullable:
            self.null_bit = 1 << b[0]
            j = 1
        self.derive: int = D_NONE
        self.dbit: int = 0
        # a reference to a field not written yet reads as the reference's "nothing seen"
        self.da: int = -1
        self.db: int = -1
        self.dconst: int = 0
        self.dconst_set: bool = False
        if f.derive:
            op = f.derive[0]
            self.derive = D_SUM if op == "sum" else D_EQ if op == "eq" else D_PREV
            self.dbit = 1 << b[j]
            j += 1
            if op in ("sum", "eq"):
                self.da = _at(pos, f.derive[1], i)
            if op == "sum":
                if type(f.derive[2]) is int:
                    self.dconst = f.derive[2]
                    self.dconst_set = True
                else:
                    self.db = _at(pos, f.derive[2], i)
        self.bit0: int = 1 << b[j] if len(b) > j else 0
        self.bit1: int = 1 << b[j + 1] if len(b) > j + 1 else 0
        self.ref: int = _at(pos, f.ref, i) if f.ref else -1
        self.scale: int = 10**f.decimals
        self.half: float = 0.5 / 10**f.decimals
        self.field: Any = f


def _at(pos: dict[str, int], qname: str, i: int) -> int:
    k = pos.get(qname, -1)
    return k if k <= i else -1


class _Plan:
    """One schema: its type byte(s), bitmap size, keys and fields."""

    def __init__(self, schema: Schema, idx: int) -> None:
        head: list[int] = []
        _uvarint(head, idx)
        self.head: list[int] = head
        self.head1: int = head[0] if len(head) == 1 else -1  # the common one-byte type
        self.nbytes: int = schema.nbytes
        self.topkeys: frozenset[str] = schema.topkeys
        self.valuekeys: frozenset[str] = schema.valuekeys
        self.has_values: bool = schema.values is not None
        self.ops: list[_Op] = [_Op(schema, i) for i in range(len(schema.plan))]
        top = {f.name for f in schema.fields if not f.in_values}
        top |= {"kind", NAME_KEY[schema.kind]} | ({"values"} if self.has_values else set())
        inner = {f.name for f in schema.fields if f.in_values}
        # every key is read by the walk (a missing one raises KeyError): counting is checking
        self.keys_read: bool = (
            top == schema.topkeys
            and (not self.has_values or set(schema.values or ()) == inner)
            and not schema.topkeys & {"_raw_bytes", "_events"}
        )
        self.ntop: int = len(schema.topkeys)
        self.nvalues: int = len(schema.valuekeys)
        self.prev: list[int] = [
            i for i, (_, q, _) in enumerate(schema.plan) if q in schema.prev_fields
        ]


class Walk:
    """The plans of a schema set, built once, and the batch writing state they write with."""

    def __init__(self, schemas: SchemaSet) -> None:
        self.by_kind: dict[str, tuple[str, dict[str, int]]] = {
            k: (n, {}) for k, n in NAME_KEY.items()
        }
        for (kind, name), (i, _) in schemas.by_type.items():
            self.by_kind[kind][1][name] = i
        self.plans: list[_Plan] = [_Plan(s, i + 1) for i, s in enumerate(schemas.schemas)]

    def lookup(self, rec: dict[str, Any]) -> int:
        """Return the type index of ``rec`` (0: none), as ``SchemaSet.lookup`` does."""
        kind = rec.get("kind")
        if not isinstance(kind, str):
            return 0
        by_name = self.by_kind.get(kind)
        if by_name is None:
            return 0
        name = rec.get(by_name[0])
        if not isinstance(name, str):
            return 0
        return by_name[1].get(name, 0)

    def write(
        self,
        out: list[int],
        table: StrTable,
        prev: dict[str, Any],
        last_ts: int,
        rec: dict[str, Any],
        t: int,
    ) -> int:
        """Append record ``rec`` of type ``t`` to ``out``; return the batch's new last ts.

        Raises:
            Misfit: the record does not fit (``out`` may hold part of it; ``prev`` unchanged).
            EncodeError: a value out of range.
            KeyError: a key of the schema is missing (a misfit too).
        """
        plan = self.plans[t - 1]
        nk = len(rec)
        if plan.keys_read and (
            nk == plan.ntop or (nk == plan.ntop + 1 and ("_raw_bytes" in rec or "_events" in rec))
        ):
            pass  # the schema's keys (proved by reading them), and at most one attachment
        elif rec.keys() != plan.topkeys:
            keys = rec.keys()
            if not keys >= plan.topkeys:
                raise Misfit
            for k in keys - plan.topkeys:
                if not (isinstance(k, str) and k[:1] == "_"):
                    raise Misfit
        got: Any = rec.get("values")
        vals: dict[str, Any] = _NO_VALUES
        if plan.has_values:
            if type(got) is not dict:
                raise Misfit
            vals = got
            if len(vals) != plan.nvalues if plan.keys_read else vals.keys() != plan.valuekeys:
                raise Misfit
        elif type(got) is dict:
            vals = got
        if plan.head1 >= 0:
            out.append(plan.head1)
        else:
            out.extend(plan.head)
        at = len(out)
        for _ in range(plan.nbytes):
            out.append(0)
        ops = plan.ops
        seen: list[Any] = [None] * len(ops)
        bits = 0
        index = table.index
        for i in range(len(ops)):
            op = ops[i]
            v: Any = vals[op.key] if op.in_values else rec[op.key]
            seen[i] = v
            if op.nullable and v is None:
                bits |= op.null_bit
                continue
            if op.derive != D_NONE and _predicted(op, v, seen, prev):
                bits |= op.dbit
                if op.kind == K_TS:
                    last_ts = v
                continue
            kind = op.kind
            if kind == K_COUNT:
                if type(v) is not int or v < 0:
                    raise Misfit
                if v:
                    bits |= op.bit0
                    _uvarint(out, v - 1)
            elif kind == K_FLAG:
                if type(v) is not bool:
                    raise Misfit
                if v:
                    bits |= op.bit0
            elif kind == K_TS:
                if type(v) is not int:
                    raise Misfit
                _svarint(out, v - last_ts)
                last_ts = v
            elif kind == K_INT:
                if type(v) is not int:
                    raise Misfit
                _svarint(out, v)
            elif kind == K_UINT:
                if type(v) is not int or v < 0:
                    raise Misfit
                if op.ref >= 0:
                    base = seen[op.ref]
                    if type(base) is not int:
                        raise Misfit
                    _svarint(out, v - base)
                elif op.ref == -1 and op.field.ref:
                    raise Misfit  # refers to a field not written yet
                else:
                    _uvarint(out, v)
            elif kind == K_STR:
                if type(v) is not str:
                    raise Misfit
                s = index.get(v)
                if s is None:
                    _uvarint(out, len(table.strings))
                    _define(out, table, v, 0, 0)
                else:
                    _uvarint(out, s)
            elif kind == K_ID:
                _id(out, table, index, v)
            elif kind == K_NUM:
                bits |= _num(out, op, v)
            elif kind == K_TOP_ID:
                if type(v) is not list and type(v) is not tuple:
                    raise Misfit
                _uvarint(out, len(v))
                for pair in v:
                    if (type(pair) is not list and type(pair) is not tuple) or len(pair) != 2:
                        raise Misfit
                    count = pair[1]
                    if type(count) is not int or count < 0:
                        raise Misfit
                    _id(out, table, index, pair[0])
                    _uvarint(out, count)
            elif kind == K_VALUE:
                if op.field.kind == "map" and type(v) is not dict:
                    raise Misfit
                if type(v) is int and 0 <= v <= 239:
                    out.append(16 + v)
                else:
                    scratch = bytearray()
                    write_value(scratch, table, v)
                    out.extend(scratch)
            else:
                last_ts = _top(out, table, op, v, last_ts)
        for i in plan.prev:
            prev[ops[i].qname] = seen[i]
        if plan.nbytes == 1:
            out[at] = bits
        else:
            for j in range(plan.nbytes):
                out[at + j] = (bits >> (8 * j)) & 0xFF
        return last_ts


def _predicted(op: _Op, v: Any, seen: list[Any], prev: dict[str, Any]) -> bool:
    # CompactEncoder._derived
    if op.derive == D_SUM:
        a = seen[op.da] if op.da >= 0 else None
        b = op.dconst if op.dconst_set else seen[op.db] if op.db >= 0 else None
        return type(v) is int and type(a) is int and type(b) is int and bool(v == a + b)
    if op.derive == D_EQ:
        if op.da < 0:
            return False
        w = seen[op.da]
    else:
        if op.qname not in prev:
            return False
        w = prev[op.qname]
    return type(v) is type(w) and bool(v == w)


def _uvarint(out: list[int], n: int) -> None:
    if 0 <= n < 0x80:
        out.append(n)
        return
    if 0 <= n < _SHORT:  # compared with a machine-sized constant: no big-int comparison
        while n > 0x7F:
            out.append((n & 0x7F) | 0x80)
            n >>= 7
        out.append(n)
        return
    if not 0 <= n < _U64:
        msg = f"integer {n} is outside the encodable range [0, 2**64)"
        raise EncodeError(msg)
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _svarint(out: list[int], n: int) -> None:
    if -0x40 <= n < 0x40:
        out.append(n << 1 if n >= 0 else ((-n) << 1) - 1)
        return
    if -_SHORT <= n < _SHORT:
        _uvarint(out, n << 1 if n >= 0 else ((-n) << 1) - 1)
        return
    if not -_I64 <= n < _I64:
        msg = f"integer {n} is outside the encodable range [-2**63, 2**63)"
        raise EncodeError(msg)
    _uvarint(out, n << 1 if n >= 0 else ((-n) << 1) - 1)


def _define(out: list[int], table: StrTable, s: str, shift: int, tag: int) -> None:
    # StrTable._define into a list
    table.index[s] = len(table.strings)
    table.strings.append(s)
    # _DECIMAL_RE: "0", or a digit 1-9 then up to 17 digits (the first character decides most)
    if s and len(s) <= 18 and (("1" <= s[0] <= "9" and s.isascii() and s.isdigit()) or s == "0"):
        _uvarint(out, (((int(s) << 1) | 1) << shift) | tag)
    else:
        raw = s.encode("utf-8", "surrogatepass")
        _uvarint(out, ((len(raw) << 1) << shift) | tag)
        out.extend(raw)


def _id(out: list[int], table: StrTable, index: dict[str, int], v: Any) -> None:
    # CompactEncoder._id without admission (no buckets)
    if type(v) is str:
        s = index.get(v)
        if s is None:
            _define(out, table, v, 2, 3)
        else:
            _uvarint(out, s << 2)
    elif type(v) is int:
        if not -_I64 <= v < _I64:
            msg = f"integer {v} is outside the encodable range [-2**63, 2**63)"
            raise EncodeError(msg)
        _uvarint(out, ((v << 1 if v >= 0 else ((-v) << 1) - 1) << 2) | 2)
    else:
        raise Misfit


def _num(out: list[int], op: _Op, v: Any) -> int:
    # CompactEncoder._num
    if type(v) is int:
        _svarint(out, v)
        return 0
    if type(v) is not float:
        raise Misfit
    x: float = v * op.scale
    if -_F_I64 < x < _F_I64:
        q = round(x)
        if abs(q / op.scale - v) <= op.half:
            _svarint(out, q)
            return op.bit0
    out.extend(_F64.pack(v))
    return op.bit1


def _top(out: list[int], table: StrTable, op: _Op, v: Any, last_ts: int) -> int:
    # CompactEncoder._top for str, ts and self-described values
    if type(v) is not list and type(v) is not tuple:
        raise Misfit
    _uvarint(out, len(v))
    of = op.field.of
    for pair in v:
        if (type(pair) is not list and type(pair) is not tuple) or len(pair) != 2:
            raise Misfit
        value = pair[0]
        count = pair[1]
        if type(count) is not int or count < 0:
            raise Misfit
        if of == "str":
            if type(value) is not str:
                raise Misfit
            s = table.index.get(value)
            if s is None:
                _uvarint(out, len(table.strings))
                _define(out, table, value, 0, 0)
            else:
                _uvarint(out, s)
        elif of == "ts":
            if type(value) is not int:
                raise Misfit
            _svarint(out, value - last_ts)
            last_ts = value
        else:
            scratch = bytearray()
            write_value(scratch, table, value)
            out.extend(scratch)
        _uvarint(out, count)
    return last_ts
