"""Event-time windows (SPEC section 3): assigners, aggregates and the engine's window stage."""

from __future__ import annotations

from streamfeat.windows._aggregates import AggregateSet, build_aggregate
from streamfeat.windows._config import WindowConfig, parse_window
from streamfeat.windows._spec import AggSpec, AssignSpec, parse_aggregate, parse_assign
from streamfeat.windows._stage import WindowStage, WindowState, build_logic

__all__ = [
    "AggSpec",
    "AggregateSet",
    "AssignSpec",
    "WindowConfig",
    "WindowStage",
    "WindowState",
    "build_aggregate",
    "build_logic",
    "parse_aggregate",
    "parse_assign",
    "parse_window",
]
