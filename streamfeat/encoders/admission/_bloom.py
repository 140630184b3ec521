"""Counting Bloom filter admission: admit an id at its ``n``-th sighting.

Each id maps to ``hashes`` 8-bit saturating counters out of ``cells`` (memory: ``cells`` bytes).
A sighting raises the id's counters by conservative update (only those at the current minimum,
to that minimum + 1), and the id's count is the minimum of its counters. That minimum never
undercounts, so an id is always admitted at its ``n``-th sighting; it can overcount when other
ids share all its counters, which admits an id early at about the rate a fresh id finds all its
counters non-zero (:meth:`false_positive_rate`, ``fill ** hashes``).
"""

from __future__ import annotations

from typing import Any

from streamfeat.encoders.admission._common import HashFilter, get_int, load_as, pack_state
from streamfeat.errors import DecodeError

__all__ = ["CountingBloomAdmission"]


def check_bloom_n(n: int) -> int:
    """Return ``n`` if it is a valid sighting count (1..255).

    Raises:
        ValueError: naming the value.
    """
    if type(n) is not int or not 1 <= n <= 255:
        msg = f"counting bloom n must be an integer in 1..255, got {n!r}"
        raise ValueError(msg)
    return n


class CountingBloomAdmission(HashFilter):
    """Admit an id once it has been seen ``n`` times (1 <= n <= 255).

    Args:
        n: sightings needed.
        seed: seeds the hashes.
        cells: counters (bytes of memory).
        hashes: counters per id.
        buckets: hashed buckets of refused ids.
    """

    kind = "bloom"

    def __init__(
        self, n: int, *, seed: int = 0, cells: int = 1 << 20, hashes: int = 4, buckets: int = 4096
    ) -> None:
        super().__init__(seed=seed, cells=cells, hashes=hashes, buckets=buckets)
        self.n = check_bloom_n(n)
        self.counters = bytearray(cells)

    def __repr__(self) -> str:
        return f"CountingBloomAdmission(n={self.n}, seed={self.seed}, cells={self.cells}, hashes={self.hashes})"

    def admit(self, key: str) -> bool:
        """Count one sighting of ``key``; return True once it has been seen ``n`` times."""
        self.sightings += 1
        c = self.counters
        idx = self.indices(key)
        low = min(c[i] for i in idx)
        if low >= self.n:
            return True
        new = low + 1
        for i in idx:
            if c[i] < new:
                c[i] = new
        return new >= self.n

    def estimate(self, key: str) -> int:
        """Return the sightings counted for ``key`` (never fewer than the true number)."""
        c = self.counters
        return min(c[i] for i in self.indices(key))

    def false_positive_rate(self) -> float:
        """Return the chance that a fresh id finds all its counters non-zero."""
        nonzero = self.cells - self.counters.count(0)
        return float((nonzero / self.cells) ** self.hashes)

    def dump(self) -> bytes:
        """Return the filter's parameters and state as bytes (for ``Store.put_state``)."""
        params = {**self._base_params(), "n": self.n}
        return pack_state(
            self.kind, params, {**self._base_state(), "counters": bytes(self.counters)}
        )

    @classmethod
    def load(cls, data: bytes) -> CountingBloomAdmission:
        """Rebuild a filter from its ``dump()`` bytes (it continues exactly where it stopped).

        Raises:
            DecodeError: ``data`` is not the state of this kind of filter, or is corrupt.
        """
        return load_as(cls.from_state, cls.kind, data)

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> CountingBloomAdmission:
        """Rebuild a filter from unpacked state (see ``load_admission``)."""
        cells = get_int(params, "cells", 8, 1 << 32)
        raw = state.get("counters")
        # check the size before building: a forged `cells` must not drive an allocation
        if type(raw) is not bytes or len(raw) != cells:
            msg = "admission state `counters` has the wrong size"
            raise DecodeError(msg)
        f = cls(
            get_int(params, "n", 1, 255),
            seed=get_int(params, "seed"),
            cells=cells,
            hashes=get_int(params, "hashes", 1, 16),
            buckets=get_int(params, "buckets", 1, 1 << 32),
        )
        f.counters = bytearray(raw)
        f._load_base_state(state)
        return f
