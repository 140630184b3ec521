"""What the admission filters share: seeded hashing, a dumpable PRNG, and the state format.

State bytes (``dump()``) are ``b"SFAD"``, a format byte, then a msgpack map
``{"kind", "params", "state"}``; arrays are little-endian bytes. ``load_admission`` checks
every length against the parameters before building anything, so a corrupt state is a
:class:`~streamfeat.errors.DecodeError`, never a half-built filter.
"""

from __future__ import annotations

import hashlib
import sys
from array import array
from collections.abc import Callable
from typing import Any, TypeVar

import msgpack

from streamfeat.errors import DecodeError

__all__ = [
    "MAGIC",
    "Bits",
    "HashFilter",
    "SplitMix64",
    "array_bytes",
    "get_array",
    "get_float",
    "get_int",
    "load_as",
    "pack_state",
    "unpack_state",
]

MAGIC = b"SFAD"
STATE_FORMAT = 1
_MASK = (1 << 64) - 1
T = TypeVar("T")


class SplitMix64:
    """A tiny seedable PRNG whose whole state is one 64-bit integer (cheap to store)."""

    __slots__ = ("state",)

    def __init__(self, seed: int) -> None:
        self.state = seed & _MASK

    def next(self) -> int:
        """Return the next 64-bit output."""
        self.state = z = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def random(self) -> float:
        """Return a float uniform in [0, 1)."""
        return (self.next() >> 11) * (1.0 / (1 << 53))


class HashFilter:
    """Base of the filters: ``hashes`` seeded cell indices per key, buckets, a sticky admitted set.

    Args:
        seed: seeds the cell hashes and the Bernoulli draws (two filters with the same seed
            and the same sightings decide the same).
        cells: number of cells (counters, or bits of the admitted set).
        hashes: cells per key.
        buckets: number of hashed buckets a refused id is sent as (not seeded: every device
            maps an id to the same bucket, so the cloud can still group them).
    """

    kind = ""

    def __init__(self, *, seed: int, cells: int, hashes: int, buckets: int) -> None:
        for name, value, low in (
            ("cells", cells, 8),
            ("hashes", hashes, 1),
            ("buckets", buckets, 1),
        ):
            if type(value) is not int or value < low:
                msg = f"admission {name} must be an integer >= {low}, got {value!r}"
                raise ValueError(msg)
        if hashes > 16:
            msg = f"admission hashes must be at most 16, got {hashes}"
            raise ValueError(msg)
        self.seed = seed
        self.cells = cells
        self.hashes = hashes
        self.buckets = buckets
        self.rng = SplitMix64(seed)
        self.sightings = 0
        self._hkey = (seed & _MASK).to_bytes(8, "little")

    def hash2(self, key: str) -> tuple[int, int]:
        """Return the two seeded 64-bit hashes of ``key`` (BLAKE2b keyed by the seed)."""
        d = hashlib.blake2b(
            key.encode("utf-8", "surrogatepass"), digest_size=16, key=self._hkey
        ).digest()
        return int.from_bytes(d[:8], "little"), int.from_bytes(d[8:], "little") | 1

    def indices(self, key: str, m: int = 0, h: tuple[int, int] | None = None) -> list[int]:
        """Return the ``hashes`` indices of ``key`` below ``m`` (default ``cells``), by double hashing."""
        h1, h2 = h if h is not None else self.hash2(key)
        m = m or self.cells
        return [(h1 + i * h2) % m for i in range(self.hashes)]

    def bucket(self, key: str) -> int:
        """Return the hashed bucket of ``key`` (what a refused id is sent as)."""
        d = hashlib.blake2b(
            key.encode("utf-8", "surrogatepass"), digest_size=8, person=b"sf-bucket"
        ).digest()
        return int.from_bytes(d, "little") % self.buckets

    def _base_params(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "cells": self.cells,
            "hashes": self.hashes,
            "buckets": self.buckets,
        }

    def _base_state(self) -> dict[str, Any]:
        return {"rng": self.rng.state, "sightings": self.sightings}

    def _load_base_state(self, state: dict[str, Any]) -> None:
        self.rng.state = _int(state, "rng", 0, _MASK)
        self.sightings = _int(state, "sightings", 0, _MASK)


def load_as(factory: Callable[[dict[str, Any], dict[str, Any]], T], kind: str, data: bytes) -> T:
    """Rebuild a filter of ``kind`` from its ``dump()`` bytes with ``factory(params, state)``.

    Raises:
        DecodeError: ``data`` is not the state of that kind of filter, or is corrupt.
    """
    found, params, state = unpack_state(data)
    if found != kind:
        msg = f"admission state is of kind {found!r}, not {kind!r}"
        raise DecodeError(msg)
    try:
        return factory(params, state)
    except DecodeError:
        raise
    except ValueError as exc:  # parameters the constructor refuses
        msg = f"admission state is invalid: {exc}"
        raise DecodeError(msg) from exc


def pack_state(kind: str, params: dict[str, Any], state: dict[str, Any]) -> bytes:
    """Return the state bytes of a filter."""
    body: bytes = msgpack.packb({"kind": kind, "params": params, "state": state}, use_bin_type=True)
    return MAGIC + bytes([STATE_FORMAT]) + body


def unpack_state(data: bytes) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Parse state bytes into ``(kind, params, state)``.

    Raises:
        DecodeError: not admission state, or corrupt.
    """
    if not isinstance(data, bytes | bytearray) or bytes(data[:4]) != MAGIC or len(data) < 5:
        msg = "not admission filter state (bad magic)"
        raise DecodeError(msg)
    if data[4] != STATE_FORMAT:
        msg = f"admission state format {data[4]} is not supported"
        raise DecodeError(msg)
    n = len(data)
    try:
        obj = msgpack.unpackb(
            bytes(data[5:]), raw=False, strict_map_key=True, timestamp=0,
            max_str_len=n, max_bin_len=n, max_array_len=n, max_map_len=n, max_ext_len=n,
        )  # fmt: skip
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
        msg = f"admission state does not unpack: {exc}"
        raise DecodeError(msg) from exc
    if (
        type(obj) is not dict
        or type(obj.get("params")) is not dict
        or type(obj.get("state")) is not dict
    ):
        msg = "admission state is not a {kind, params, state} map"
        raise DecodeError(msg)
    kind = obj.get("kind")
    if type(kind) is not str:
        msg = "admission state has no kind"
        raise DecodeError(msg)
    return kind, obj["params"], obj["state"]


def _int(d: dict[str, Any], key: str, low: int, high: int) -> int:
    v = d.get(key)
    if type(v) is not int or not low <= v <= high:
        msg = f"admission state `{key}` must be an integer in [{low}, {high}], got {v!r}"
        raise DecodeError(msg)
    return v


def get_int(d: dict[str, Any], key: str, low: int = 0, high: int = _MASK) -> int:
    """Read an integer field of params or state, refusing anything else."""
    return _int(d, key, low, high)


def get_float(d: dict[str, Any], key: str, low: float, high: float) -> float:
    """Read a float field of params or state, refusing anything else."""
    v: Any = d.get(key)
    if type(v) not in (int, float) or not low <= v <= high:
        msg = f"admission state `{key}` must be a number in [{low}, {high}], got {v!r}"
        raise DecodeError(msg)
    return float(v)


def get_array(d: dict[str, Any], key: str, typecode: str, length: int) -> array[Any]:
    """Read a little-endian array of ``length`` items, refusing any other size."""
    raw = d.get(key)
    a = array(typecode)
    if type(raw) is not bytes or len(raw) != length * a.itemsize:
        msg = f"admission state `{key}` must be {length} items of {a.itemsize} bytes"
        raise DecodeError(msg)
    a.frombytes(raw)
    if sys.byteorder == "big":
        a.byteswap()
    return a


def array_bytes(a: array[Any]) -> bytes:
    """Return ``a`` as little-endian bytes."""
    if sys.byteorder == "big":
        a = array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


class Bits:
    """A fixed-size bit set (the sticky "admitted" Bloom filter)."""

    __slots__ = ("data",)

    def __init__(self, nbits: int, data: bytes | None = None) -> None:
        self.data = bytearray(data) if data is not None else bytearray((nbits + 7) // 8)

    def all_set(self, idx: list[int]) -> bool:
        """Return True when every bit of ``idx`` is set."""
        d = self.data
        return all(d[i >> 3] >> (i & 7) & 1 for i in idx)

    def set(self, idx: list[int]) -> None:
        """Set the bits of ``idx``."""
        d = self.data
        for i in idx:
            d[i >> 3] |= 1 << (i & 7)

    def fill(self, nbits: int) -> float:
        """Return the fraction of the ``nbits`` bits that are set."""
        return sum(b.bit_count() for b in self.data) / nbits
