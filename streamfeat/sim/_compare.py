"""The served feed's measures and the paired comparison of two ranking modes (pure).

A ranking run gives, per device, the counts of what its simulated user did
(:class:`~streamfeat.sim._users.ServedStats`). :func:`summarise_ranking` sums them;
:func:`paired_ratio` compares two runs of the same devices and seeds.

The CTR ratio of mode B over mode A is the *ratio of sums*
``(sum_d clicks_B[d] / sum_d exposures_B[d]) / (sum_d clicks_A[d] / sum_d exposures_A[d])``,
and its 95% confidence interval comes from a paired bootstrap over devices: ``rounds`` times,
draw ``n`` devices with replacement (seeded), keep each drawn device's counts in *both* modes
together, compute the ratio of sums; the interval is the 2.5th and 97.5th percentiles of the
ratios (percentile method). Pairing keeps the device-to-device spread (some users click much
more than others) out of the interval: only the difference the mode makes to each device counts.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MEASURES", "paired_ratio", "summarise_ranking"]

MEASURES = ("sessions", "pages", "exposures", "clicks", "purchases", "deletes")


def summarise_ranking(mode: str, per_device: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Sum the per-device counts of one run: pages served, exposures, clicks, CTR, clicks per
    session, purchases, deletes, and clicks and exposures by position."""
    out: dict[str, Any] = {"mode": mode, "devices": len(per_device)}
    for k in MEASURES:
        out[k] = sum(int(d.get(k, 0)) for d in per_device.values())
    out["ctr"] = out["clicks"] / out["exposures"] if out["exposures"] else 0.0
    out["clicks_per_session"] = out["clicks"] / out["sessions"] if out["sessions"] else 0.0
    by_pos: dict[int, list[int]] = {}
    for d in per_device.values():
        for pos, (n, c) in d.get("by_position", {}).items():
            row = by_pos.setdefault(int(pos), [0, 0])
            row[0] += n
            row[1] += c
    out["by_position"] = {str(k): v for k, v in sorted(by_pos.items())}
    return out


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return float("nan")
    x = (len(sorted_values) - 1) * q
    lo = int(x)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (x - lo)


def paired_ratio(
    base: Mapping[str, Mapping[str, Any]],
    other: Mapping[str, Mapping[str, Any]],
    *,
    num: str = "clicks",
    den: str = "exposures",
    rounds: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Return ``{"ratio", "low", "high", "devices", "rounds", "method"}``: the ratio of
    ``other``'s ``num/den`` (ratio of sums) over ``base``'s, with its paired bootstrap
    interval over the devices both runs have (see the module docstring).

    Raises:
        ValueError: the runs share no device, or a run has no ``den`` at all.
    """
    devices = sorted(set(base) & set(other))
    if not devices:
        msg = "the two runs share no device: nothing to pair"
        raise ValueError(msg)
    rows = [
        (
            float(base[d].get(num, 0)),
            float(base[d].get(den, 0)),
            float(other[d].get(num, 0)),
            float(other[d].get(den, 0)),
        )
        for d in devices
    ]

    def ratio(sample: Sequence[tuple[float, float, float, float]]) -> float:
        bn = sum(r[0] for r in sample)
        bd = sum(r[1] for r in sample)
        on = sum(r[2] for r in sample)
        od = sum(r[3] for r in sample)
        if bd == 0 or od == 0 or bn == 0:
            return float("nan")
        return (on / od) / (bn / bd)

    point = ratio(rows)
    if point != point:  # nan
        msg = f"no {den} or no {num} in the base run: no ratio"
        raise ValueError(msg)
    rng = random.Random(f"streamfeat.compare:{seed}")
    n = len(rows)
    draws = []
    for _ in range(rounds):
        r = ratio([rows[int(rng.random() * n)] for _ in range(n)])
        if r == r:
            draws.append(r)
    draws.sort()
    alpha = (1.0 - level) / 2.0
    return {
        "ratio": point,
        "low": _percentile(draws, alpha),
        "high": _percentile(draws, 1.0 - alpha),
        "devices": n,
        "rounds": rounds,
        "method": f"paired bootstrap over devices, ratio of sums, {rounds} rounds, seed {seed}",
    }
