"""Byte-level building blocks of the compact codec: varints, a bounded reader, string tables.

Every read goes through :class:`Reader`, which checks the bytes left before it slices, caps a
varint at 10 bytes and refuses any count larger than the bytes that remain. So a corrupt or
hostile input can only make the decoder raise :class:`~streamfeat.errors.DecodeError`; it can
never make it allocate more than the input's size or loop longer than the input's length.
"""

from __future__ import annotations

import re
import struct
from typing import Any

from streamfeat.errors import DecodeError, EncodeError

__all__ = [
    "MAX_DEPTH",
    "Reader",
    "StrTable",
    "StrTableReader",
    "put_svarint",
    "put_uvarint",
    "read_value",
    "write_value",
    "zigzag",
]

MAX_DEPTH = 32  # nesting of free-form values (lists/maps), both ways
_U64 = 1 << 64
_I64 = 1 << 63
_F64 = struct.Struct(">d")
# canonical decimals of up to 18 digits (< 2**60, so tagged forms fit a 64-bit varint); ASCII
# only, as str.isdigit() also takes "²"
_DECIMAL_RE = re.compile(r"(?:0|[1-9][0-9]{0,17})\Z")

# Self-describing value tags (the "any" field kind, free-form values, fallback records).
T_NULL, T_FALSE, T_TRUE, T_INT, T_FLOAT, T_STR, T_LIST, T_MAP, T_UINT = range(9)
T_SMALL = 16  # tags 16..255 are the ints 0..239 in one byte
_SMALL_MAX = 255 - T_SMALL


def put_uvarint(buf: bytearray, n: int) -> None:
    """Append ``n`` (0 <= n < 2**64) as an LEB128 varint."""
    if 0 <= n < 0x80:
        buf.append(n)
        return
    if not 0 <= n < _U64:
        msg = f"integer {n} is outside the encodable range [0, 2**64)"
        raise EncodeError(msg)
    while n > 0x7F:
        buf.append((n & 0x7F) | 0x80)
        n >>= 7
    buf.append(n)


def zigzag(n: int) -> int:
    """Map a signed integer to an unsigned one so that small magnitudes stay small."""
    if not -_I64 <= n < _I64:
        msg = f"integer {n} is outside the encodable range [-2**63, 2**63)"
        raise EncodeError(msg)
    return n << 1 if n >= 0 else ((-n) << 1) - 1


def put_svarint(buf: bytearray, n: int) -> None:
    """Append the signed ``n`` as a zigzag varint."""
    if -0x40 <= n < 0x40:
        buf.append(n << 1 if n >= 0 else ((-n) << 1) - 1)
        return
    put_uvarint(buf, zigzag(n))


class Reader:
    """A cursor over bytes that raises :class:`DecodeError` instead of reading past the end."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data)

    def left(self) -> int:
        """Return the number of bytes not read yet."""
        return self.end - self.pos

    def fail(self, what: str) -> DecodeError:
        """Return a DecodeError naming ``what`` was wrong and the byte offset."""
        return DecodeError(f"{what} at byte {self.pos}")

    def byte(self) -> int:
        """Read one byte."""
        if self.pos >= self.end:
            msg = "unexpected end of data"
            raise self.fail(msg)
        b = self.data[self.pos]
        self.pos += 1
        return b

    def take(self, n: int) -> bytes:
        """Read ``n`` bytes (refused before slicing when fewer are left)."""
        if n > self.end - self.pos:
            msg = f"length {n} runs past the end of the data"
            raise self.fail(msg)
        start = self.pos
        self.pos += n
        return self.data[start : self.pos]

    def uvarint(self) -> int:
        """Read an unsigned varint of at most 10 bytes (values below 2**64)."""
        data, pos, end = self.data, self.pos, self.end
        result = shift = 0
        while True:
            if pos >= end:
                self.pos = pos
                msg = "unexpected end of data inside a varint"
                raise self.fail(msg)
            b = data[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                break
            shift += 7
            if shift >= 70:
                self.pos = pos
                msg = "varint longer than 10 bytes"
                raise self.fail(msg)
        self.pos = pos
        if result >= _U64:
            msg = "varint above 2**64"
            raise self.fail(msg)
        return result

    def svarint(self) -> int:
        """Read a zigzag varint."""
        z = self.uvarint()
        return (z >> 1) ^ -(z & 1)

    def count(self, min_bytes_each: int = 1) -> int:
        """Read an element count, refusing one that the bytes left could not hold."""
        n = self.uvarint()
        if n * min_bytes_each > self.end - self.pos:
            msg = f"count {n} is larger than the data left"
            raise self.fail(msg)
        return n

    def f64(self) -> float:
        """Read a big-endian IEEE 754 double."""
        return float(_F64.unpack(self.take(8))[0])


class StrTable:
    """The encoder's per-batch string dictionary: a string is sent once, then by index.

    A reference is a varint: an index below the table's size names a known string; the index
    equal to the size announces a new entry, written inline right after it. An entry is
    ``varint(len << 1) + UTF-8`` or, for a canonical decimal string of up to 18 digits (ids
    such as ``"2333346"``), ``varint(number << 1 | 1)``.
    """

    __slots__ = ("index", "strings")

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.strings: list[str] = []

    def put(self, buf: bytearray, s: str) -> None:
        """Append a reference to ``s`` (and its definition the first time)."""
        i = self.index.get(s)
        if i is not None:
            put_uvarint(buf, i)
            return
        put_uvarint(buf, len(self.strings))
        self._define(buf, s, 0, 0)

    def put_id(self, buf: bytearray, s: str) -> None:
        """Append ``s`` as an id: ``index << 2``, or a new entry as ``head << 2 | 3``.

        Ids are mostly new within a batch, so their definition carries the marker in its own
        varint instead of spending a reference on it (tags 1 and 2 are the id kind's).
        """
        i = self.index.get(s)
        if i is not None:
            put_uvarint(buf, i << 2)
            return
        self._define(buf, s, 2, 3)

    def _define(self, buf: bytearray, s: str, shift: int, tag: int) -> None:
        self.index[s] = len(self.strings)
        self.strings.append(s)
        if _DECIMAL_RE.match(s):
            put_uvarint(buf, (((int(s) << 1) | 1) << shift) | tag)
        else:
            raw = s.encode("utf-8", "surrogatepass")
            put_uvarint(buf, ((len(raw) << 1) << shift) | tag)
            buf += raw

    def mark(self) -> int:
        """Return a position to :meth:`rollback` to."""
        return len(self.strings)

    def rollback(self, mark: int) -> None:
        """Forget the entries added since ``mark`` (their bytes were discarded)."""
        while len(self.strings) > mark:
            del self.index[self.strings.pop()]


class StrTableReader:
    """The decoder's side of :class:`StrTable`."""

    __slots__ = ("strings",)

    def __init__(self) -> None:
        self.strings: list[str] = []

    def get(self, r: Reader) -> str:
        """Read a string reference (and a new entry's definition)."""
        return self.at(r, r.uvarint())

    def at(self, r: Reader, i: int) -> str:
        """Resolve the already-read reference ``i``."""
        strings = self.strings
        if i < len(strings):
            return strings[i]
        if i != len(strings):
            msg = f"string reference {i} beyond the table of {len(strings)}"
            raise r.fail(msg)
        return self.define(r, r.uvarint())

    def define(self, r: Reader, head: int) -> str:
        """Read a new entry whose head varint (``len << 1`` or ``number << 1 | 1``) was read."""
        if head & 1:
            s = str(head >> 1)
        else:
            raw = r.take(head >> 1)
            try:
                s = raw.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError as exc:
                msg = "string entry is not UTF-8"
                raise r.fail(msg) from exc
        self.strings.append(s)
        return s


def write_value(buf: bytearray, table: StrTable, v: Any, depth: int = 0) -> None:
    """Append the self-describing encoding of a JSON-like value (exact round trip).

    Raises:
        EncodeError: for a type JSON and msgpack do not both carry, an integer outside
            [-2**63, 2**64), a non-string map key, or nesting deeper than ``MAX_DEPTH``.
    """
    t = type(v)
    if v is None:
        buf.append(T_NULL)
    elif t is bool:
        buf.append(T_TRUE if v else T_FALSE)
    elif t is int:
        if 0 <= v <= _SMALL_MAX:
            buf.append(T_SMALL + v)
        elif v >= _I64:  # [2**63, 2**64): what JSON and msgpack also carry
            buf.append(T_UINT)
            put_uvarint(buf, v)
        else:
            buf.append(T_INT)
            put_svarint(buf, v)
    elif t is float:
        buf.append(T_FLOAT)
        buf += _F64.pack(v)
    elif t is str:
        buf.append(T_STR)
        table.put(buf, v)
    elif t is list or t is tuple:
        if depth >= MAX_DEPTH:
            msg = f"value nested deeper than {MAX_DEPTH} levels"
            raise EncodeError(msg)
        buf.append(T_LIST)
        put_uvarint(buf, len(v))
        for x in v:
            write_value(buf, table, x, depth + 1)
    elif t is dict:
        if depth >= MAX_DEPTH:
            msg = f"value nested deeper than {MAX_DEPTH} levels"
            raise EncodeError(msg)
        buf.append(T_MAP)
        put_uvarint(buf, len(v))
        for k, x in v.items():
            if type(k) is not str:
                msg = f"map key {k!r} is not a string"
                raise EncodeError(msg)
            table.put(buf, k)
            write_value(buf, table, x, depth + 1)
    else:
        msg = f"value of type {t.__name__} cannot be encoded"
        raise EncodeError(msg)


def read_value(r: Reader, table: StrTableReader, depth: int = 0) -> Any:
    """Read one value written by :func:`write_value`."""
    tag = r.byte()
    if tag >= T_SMALL:
        return tag - T_SMALL
    if tag == T_NULL:
        return None
    if tag == T_FALSE:
        return False
    if tag == T_TRUE:
        return True
    if tag == T_INT:
        return r.svarint()
    if tag == T_UINT:
        return r.uvarint()
    if tag == T_FLOAT:
        return r.f64()
    if tag == T_STR:
        return table.get(r)
    if tag not in (T_LIST, T_MAP):
        msg = f"unknown value tag {tag}"
        raise r.fail(msg)
    if depth >= MAX_DEPTH:
        msg = f"value nested deeper than {MAX_DEPTH} levels"
        raise r.fail(msg)
    if tag == T_LIST:
        return [read_value(r, table, depth + 1) for _ in range(r.count(1))]
    out: dict[str, Any] = {}
    for _ in range(r.count(2)):
        k = table.get(r)
        out[k] = read_value(r, table, depth + 1)
    return out
