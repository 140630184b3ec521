"""Poisson inclusion (McMahan et al., "Ad click prediction: a view from the trenches", 2013).

Each sighting of an id not admitted yet admits it with probability ``p``, so the number of
sightings until admission is geometric with mean ``1 / p``: ids seen once or twice mostly stay
out, frequent ids come in after about ``1 / p`` sightings. Once admitted an id stays admitted;
the admitted set is a Bloom filter of ``cells`` bits and ``hashes`` hashes (bounded memory:
``cells / 8`` bytes), so a never-admitted id is taken for admitted with the filter's
false-positive rate ``fill ** hashes`` (:meth:`false_positive_rate`).
"""

from __future__ import annotations

from typing import Any

from streamfeat.encoders.admission._common import (
    Bits,
    HashFilter,
    get_float,
    get_int,
    load_as,
    pack_state,
)
from streamfeat.errors import DecodeError

__all__ = ["PoissonInclusion"]


def check_poisson_p(p: float) -> float:
    """Return ``p`` as a float if it is a valid probability (0, 1].

    Raises:
        ValueError: naming the value.
    """
    if not 0.0 < p <= 1.0:
        msg = f"poisson inclusion p must be in (0, 1], got {p!r}"
        raise ValueError(msg)
    return float(p)


class PoissonInclusion(HashFilter):
    """Admit an id with probability ``p`` at each sighting; sticky once admitted.

    Args:
        p: admission probability per sighting, in (0, 1].
        seed: seeds the hashes and the draws.
        cells: bits of the admitted set (memory ``cells / 8`` bytes).
        hashes: bits per id.
        buckets: hashed buckets of refused ids.
    """

    kind = "poisson"

    def __init__(
        self, p: float, *, seed: int = 0, cells: int = 1 << 20, hashes: int = 4, buckets: int = 4096
    ) -> None:
        super().__init__(seed=seed, cells=cells, hashes=hashes, buckets=buckets)
        self.p = check_poisson_p(p)
        self.admitted = Bits(cells)

    def __repr__(self) -> str:
        return f"PoissonInclusion(p={self.p}, seed={self.seed}, cells={self.cells}, hashes={self.hashes})"

    def admit(self, key: str) -> bool:
        """Count one sighting of ``key``; return True when it is (now or already) admitted."""
        self.sightings += 1
        idx = self.indices(key)
        if self.admitted.all_set(idx):
            return True
        if self.rng.random() < self.p:
            self.admitted.set(idx)
            return True
        return False

    def is_admitted(self, key: str) -> bool:
        """Return whether ``key`` is admitted, without counting a sighting."""
        return self.admitted.all_set(self.indices(key))

    def false_positive_rate(self) -> float:
        """Return the chance that an id never admitted is taken for admitted."""
        return float(self.admitted.fill(self.cells) ** self.hashes)

    def dump(self) -> bytes:
        """Return the filter's parameters and state as bytes (for ``Store.put_state``)."""
        params = {**self._base_params(), "p": self.p}
        return pack_state(
            self.kind, params, {**self._base_state(), "admitted": bytes(self.admitted.data)}
        )

    @classmethod
    def load(cls, data: bytes) -> PoissonInclusion:
        """Rebuild a filter from its ``dump()`` bytes (it continues exactly where it stopped).

        Raises:
            DecodeError: ``data`` is not the state of this kind of filter, or is corrupt.
        """
        return load_as(cls.from_state, cls.kind, data)

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> PoissonInclusion:
        """Rebuild a filter from unpacked state (see ``load_admission``)."""
        cells = get_int(params, "cells", 8, 1 << 32)
        bits = state.get("admitted")
        # check the size before building: a forged `cells` must not drive an allocation
        if type(bits) is not bytes or len(bits) != (cells + 7) // 8:
            msg = "admission state `admitted` has the wrong size"
            raise DecodeError(msg)
        f = cls(
            get_float(params, "p", 1e-12, 1.0),
            seed=get_int(params, "seed"),
            cells=cells,
            hashes=get_int(params, "hashes", 1, 16),
            buckets=get_int(params, "buckets", 1, 1 << 32),
        )
        f.admitted = Bits(f.cells, bits)
        f._load_base_state(state)
        return f
