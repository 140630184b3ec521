"""Moved to streamfeat.sim._simulation; kept so old imports work."""
# Deprecated old path, kept for one release (CHANGELOG.md): import from streamfeat.sim instead.

from __future__ import annotations

from streamfeat.sim._simulation import (
    SimOptions,
    SimReport,
    Simulation,
    percentile,
    simulate,
)

__all__ = [
    "SimOptions",
    "SimReport",
    "Simulation",
    "percentile",
    "simulate",
]
