"""Triggers: the pattern language of SPEC section 2 and the matcher that runs all patterns at once."""

from __future__ import annotations

from streamfeat.triggers._pattern import MAX_POSITIONS, MAX_REPEAT, Pattern, Step, parse_pattern

__all__ = ["MAX_POSITIONS", "MAX_REPEAT", "Pattern", "Step", "parse_pattern"]
