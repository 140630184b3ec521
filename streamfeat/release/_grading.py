"""Device grading: a device's micro-benchmark figures mapped to a compute tier.

The agent times the model runtime on a fixed reference model at first start and whenever its
hardware description changes, and reports the figures (``GradeReport``). The endpoint maps them
to a tier with thresholds (``Grading``): the first tier whose limit the device's p50 latency
meets, from the strongest down; a device slower than every limit gets the weakest tier.
Operators may pin a tier per device model (``overrides``), e.g. a phone model known to
throttle. Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field

from streamfeat.errors import ConfigError

__all__ = ["DEFAULT_GRADING", "GradeReport", "Grading", "parse_grading"]


@dataclass(frozen=True, slots=True)
class GradeReport:
    """What a device reports after its micro-benchmark.

    Attributes:
        model: the device model string (``"Pixel 7"``, ``"edge-box-2"``).
        infer_p50_ms: p50 of the reference inference, in milliseconds.
        infer_p99_ms: p99 of the same runs.
        runs: how many runs were timed.
    """

    model: str
    infer_p50_ms: float
    infer_p99_ms: float
    runs: int


@dataclass(frozen=True, slots=True)
class Grading:
    """Tiers from the strongest down, each with the p50 limit (ms) a device must meet."""

    tiers: tuple[tuple[str, float], ...]
    weakest: str
    overrides: Mapping[str, str] = field(default_factory=dict)

    def tier(self, report: GradeReport) -> str:
        """The tier of a device from its report."""
        pinned = self.overrides.get(report.model)
        if pinned is not None:
            return pinned
        p50 = report.infer_p50_ms
        if not math.isfinite(p50) or p50 < 0:
            return self.weakest
        for name, limit in self.tiers:
            if p50 <= limit:
                return name
        return self.weakest

    def names(self) -> tuple[str, ...]:
        """Every tier name, strongest first."""
        return (*(n for n, _ in self.tiers), self.weakest)


# Thresholds for the shipped reference model (a re-rank of 50 candidates); see docs/release.md.
DEFAULT_GRADING = Grading(tiers=(("high", 5.0), ("mid", 20.0)), weakest="low")


def parse_grading(text: str, *, source: str = "grading") -> Grading:
    """Parse a grading file::

        weakest = "low"
        [tiers]            # strongest first: name = p50 limit in ms
        high = 5.0
        mid = 20.0
        [overrides]        # device model -> tier
        "Pixel 3" = "low"

    Raises:
        ConfigError: naming the file, the key and the reason.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = f"not valid TOML: {exc}"
        raise ConfigError(msg, file=source) from exc
    weakest = doc.get("weakest")
    if not isinstance(weakest, str) or not weakest:
        raise ConfigError("the weakest tier's name is required", file=source, key="weakest")
    raw = doc.get("tiers", {})
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("a table of tier = p50 limit (ms)", file=source, key="tiers")
    tiers: list[tuple[str, float]] = []
    last = -1.0
    for name, limit in raw.items():
        if isinstance(limit, bool) or not isinstance(limit, int | float) or not limit > 0:
            raise ConfigError("must be a positive number of ms", file=source, key=f"tiers.{name}")
        if limit <= last:
            msg = "tiers go from the strongest (smallest limit) down"
            raise ConfigError(msg, file=source, key=f"tiers.{name}")
        last = float(limit)
        tiers.append((name, float(limit)))
    names = {n for n, _ in tiers} | {weakest}
    overrides = doc.get("overrides", {})
    if not isinstance(overrides, dict):
        raise ConfigError("must be a table", file=source, key="overrides")
    for model, tier in overrides.items():
        if tier not in names:
            msg = f"{tier!r} is not a tier"
            raise ConfigError(msg, file=source, key=f"overrides.{model}")
    return Grading(tuple(tiers), weakest, dict(overrides))
