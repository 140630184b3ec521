"""Triggers: the pattern language of SPEC section 2 and the matcher that runs all patterns at once.

Layering: ``_condition`` (field conditions) -> ``_pattern`` (text -> :class:`Pattern`) ->
``_nfa`` (patterns with ``+`` or optional steps) -> ``_trie`` (all patterns -> one shared
automaton) -> ``_matcher`` (per-device stepping, both drivers) -> ``_stage`` (the engine stage).
"""

from __future__ import annotations

from streamfeat.triggers._config import MatchLimits, TriggerConfig, parse_triggers
from streamfeat.triggers._matcher import DeviceState, Firing, Matcher
from streamfeat.triggers._pattern import MAX_POSITIONS, MAX_REPEAT, Pattern, Step, parse_pattern
from streamfeat.triggers._stage import TriggerStage

__all__ = [
    "MAX_POSITIONS",
    "MAX_REPEAT",
    "DeviceState",
    "Firing",
    "MatchLimits",
    "Matcher",
    "Pattern",
    "Step",
    "TriggerConfig",
    "TriggerStage",
    "parse_pattern",
    "parse_triggers",
]
