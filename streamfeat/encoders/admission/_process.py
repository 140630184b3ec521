"""Poisson-process admission: admit an id that is likely to reach ``k`` sightings soon.

After the streaming frequency filter of Ant Group's on-device work: rather than wait for ``k``
sightings (a counting Bloom filter) or admit at random (Poisson inclusion), model each id's
sightings as a Poisson process and admit early the ids whose rate says they will get there.

At a sighting, with ``n`` the id's count so far (this sighting included) and ``t`` the steps
since its first sighting (``t = max(1, step - first)``; a step is one sighting of any id, or the
caller's clock when ``admit(key, now=...)`` is given), the rate estimate is
``lam = (n - 1) / t``: the first sighting only starts the clock (counting it would make every
new id look as frequent as one sighting per step), and the ``n - 1`` later ones over ``t``
steps are the process's maximum-likelihood rate. The number of further sightings within the
horizon ``H`` is then ``N ~ Poisson(lam * H)``, and the id is admitted by a Bernoulli draw
with probability

    P(n + N >= k) = 1 - sum_{i=0}^{k-n-1} exp(-mu) * mu**i / i!,   mu = lam * H

(``P = 1`` once ``n >= k``). Admission is sticky (a Bloom bit set, like Poisson inclusion).

Memory is bounded: ``cells`` counters of 4 bytes and first-sighting steps of 8 bytes
(count-min style: the count is the minimum over the id's cells, its first step the latest of
its cells' earliest steps), plus ``bits / 8`` bytes of admitted set.
"""

from __future__ import annotations

import math
from array import array
from typing import Any

from streamfeat.encoders.admission._common import (
    Bits,
    HashFilter,
    array_bytes,
    get_array,
    get_int,
    load_as,
    pack_state,
)
from streamfeat.errors import DecodeError

__all__ = ["PoissonProcessAdmission", "reach_probability"]

_U32 = (1 << 32) - 1


def reach_probability(n: int, t: int, k: int, horizon: float) -> float:
    """Return P(an id seen ``n`` times over ``t`` steps reaches ``k`` within ``horizon`` steps).

    The rate estimate is ``(n - 1) / t`` (see the module docstring).

    >>> reach_probability(3, 10, 3, 100.0)
    1.0
    >>> round(reach_probability(2, 10, 3, 10.0), 4)  # mu = 1: P(N >= 1) = 1 - e**-1
    0.6321
    >>> reach_probability(1, 10, 3, 10.0)  # one sighting says nothing about the rate yet
    0.0
    """
    need = k - n
    if need <= 0:
        return 1.0
    mu = ((n - 1) / max(t, 1)) * horizon
    if mu <= 0.0:
        return 0.0
    log_mu = math.log(mu)
    cdf = sum(math.exp(-mu + i * log_mu - math.lgamma(i + 1)) for i in range(need))
    return min(1.0, max(0.0, 1.0 - cdf))


def check_process(k: int, horizon: float) -> None:
    """Check the sighting count ``k`` (1..10000) and the ``horizon`` (> 0).

    Raises:
        ValueError: naming the value.
    """
    if type(k) is not int or not 1 <= k <= 10_000:
        msg = f"poisson process k must be an integer in 1..10000, got {k!r}"
        raise ValueError(msg)
    if not horizon > 0:
        msg = f"poisson process horizon must be > 0, got {horizon!r}"
        raise ValueError(msg)


class PoissonProcessAdmission(HashFilter):
    """Admit an id by a draw on the probability that it reaches ``k`` sightings within ``horizon``.

    Args:
        k: sightings that make an id worth sending (1..10,000).
        horizon: steps ahead (sightings of any id, or the units of ``now``).
        seed: seeds the hashes and the draws.
        cells: count / first-step cells (12 bytes each).
        hashes: cells per id.
        bits: bits of the admitted set.
        buckets: hashed buckets of refused ids.
    """

    kind = "process"

    def __init__(
        self, k: int, horizon: float, *, seed: int = 0, cells: int = 1 << 16, hashes: int = 4,
        bits: int = 1 << 20, buckets: int = 4096,
    ) -> None:  # fmt: skip
        super().__init__(seed=seed, cells=cells, hashes=hashes, buckets=buckets)
        check_process(k, horizon)
        if type(bits) is not int or bits < 8:
            msg = f"poisson process bits must be an integer >= 8, got {bits!r}"
            raise ValueError(msg)
        self.k = k
        self.horizon = float(horizon)
        self.bits = bits
        self.step = 0
        self.counts = array("I", bytes(4 * cells))
        self.first = array("Q", bytes(8 * cells))  # step + 1 of the earliest sighting; 0 = empty
        self.admitted = Bits(bits)

    def __repr__(self) -> str:
        return f"PoissonProcessAdmission(k={self.k}, horizon={self.horizon}, seed={self.seed}, cells={self.cells})"

    def admit(self, key: str, now: int | None = None) -> bool:
        """Count one sighting of ``key`` (at step ``now`` if given); return whether it is admitted."""
        self.sightings += 1
        if now is None:
            self.step += 1
        elif now > self.step:
            self.step = now  # a clock that goes back holds the step: t must never shrink
        h = self.hash2(key)
        idx = self.indices(key, self.cells, h)
        bidx = self.indices(key, self.bits, h)
        counts, first = self.counts, self.first
        low = min(counts[i] for i in idx)
        new = min(low + 1, _U32)
        for i in idx:
            if counts[i] < new:
                counts[i] = new
            if first[i] == 0:
                first[i] = self.step + 1
        if self.admitted.all_set(bidx):
            return True
        t = self.step - (max(first[i] for i in idx) - 1)
        if self.rng.random() < reach_probability(new, t, self.k, self.horizon):
            self.admitted.set(bidx)
            return True
        return False

    def estimate(self, key: str) -> tuple[int, int]:
        """Return ``(n, t)``, the count and steps the next decision on ``key`` would start from."""
        idx = self.indices(key)
        n = min(self.counts[i] for i in idx)
        f = max(self.first[i] for i in idx)
        return n, (self.step - (f - 1)) if f else 0

    def false_positive_rate(self) -> float:
        """Return the chance that an id never admitted is taken for admitted."""
        return float(self.admitted.fill(self.bits) ** self.hashes)

    def dump(self) -> bytes:
        """Return the filter's parameters and state as bytes (for ``Store.put_state``)."""
        params = {**self._base_params(), "k": self.k, "horizon": self.horizon, "bits": self.bits}
        state = {
            **self._base_state(), "step": self.step, "counts": array_bytes(self.counts),
            "first": array_bytes(self.first), "admitted": bytes(self.admitted.data),
        }  # fmt: skip
        return pack_state(self.kind, params, state)

    @classmethod
    def load(cls, data: bytes) -> PoissonProcessAdmission:
        """Rebuild a filter from its ``dump()`` bytes (it continues exactly where it stopped).

        Raises:
            DecodeError: ``data`` is not the state of this kind of filter, or is corrupt.
        """
        return load_as(cls.from_state, cls.kind, data)

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> PoissonProcessAdmission:
        """Rebuild a filter from unpacked state (see ``load_admission``)."""
        cells = get_int(params, "cells", 8, 1 << 32)
        bits = get_int(params, "bits", 8, 1 << 40)
        # sizes first: forged parameters must not drive an allocation beyond the input
        counts = get_array(state, "counts", "I", cells)
        first = get_array(state, "first", "Q", cells)
        admitted = state.get("admitted")
        if type(admitted) is not bytes or len(admitted) != (bits + 7) // 8:
            msg = "admission state `admitted` has the wrong size"
            raise DecodeError(msg)
        horizon: Any = params.get("horizon")
        if type(horizon) not in (int, float) or not horizon > 0:
            msg = f"admission state `horizon` must be > 0, got {horizon!r}"
            raise DecodeError(msg)
        f = cls(
            get_int(params, "k", 1, 10_000), float(horizon), seed=get_int(params, "seed"),
            cells=cells, hashes=get_int(params, "hashes", 1, 16), bits=bits,
            buckets=get_int(params, "buckets", 1, 1 << 32),
        )  # fmt: skip
        f.counts, f.first, f.admitted = counts, first, Bits(bits, admitted)
        f.step = get_int(state, "step")
        f._load_base_state(state)
        return f
