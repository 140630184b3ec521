"""Event-time windows (SPEC section 3)."""

from __future__ import annotations

from streamfeat.windows._spec import AggSpec, AssignSpec, parse_aggregate, parse_assign

__all__ = ["AggSpec", "AssignSpec", "parse_aggregate", "parse_assign"]
