"""The ``[triggers]`` table of a tasks file, parsed once: :class:`TriggerConfig` per trigger.

The pattern is parsed here, at load, and the parse is kept: the trigger stage builds its
automaton from :attr:`TriggerConfig.pattern` and never reads the text again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streamfeat.errors import TriggerSpecError
from streamfeat.triggers._pattern import Pattern, parse_pattern

if TYPE_CHECKING:
    from streamfeat._tables import TableReader

__all__ = ["MatchLimits", "TriggerConfig", "parse_triggers"]


@dataclass(frozen=True, slots=True)
class TriggerConfig:
    """One trigger: its name and its parsed pattern (``pattern.text`` is the source)."""

    name: str
    pattern: Pattern

    @property
    def text(self) -> str:
        """The pattern as the tasks file wrote it."""
        return self.pattern.text

    @classmethod
    def parse(cls, name: str, text: str) -> TriggerConfig:
        """Parse ``text`` as the pattern of trigger ``name``.

        Raises:
            TriggerSpecError: if the pattern does not parse.
        """
        return cls(name, parse_pattern(text, name=name))


@dataclass(frozen=True, slots=True)
class MatchLimits:
    """The partial-match limits (SPEC section 5): a clock span in ms and a count of events."""

    ms: int = 24 * 3_600_000
    events: int = 10_000


def parse_triggers(table: Mapping[str, Any], reader: TableReader) -> dict[str, TriggerConfig]:
    """Parse every pattern of the ``[triggers]`` table, in the file's order.

    Raises:
        TriggerSpecError: naming the file, the key and the offending word.
        ConfigError: a name or a value that is not a pattern string.
    """
    out: dict[str, TriggerConfig] = {}
    for name, text in table.items():
        key = f"triggers.{reader.name(f'triggers.{name}', name)}"
        if not isinstance(text, str):
            raise reader.fail(key, f"must be a pattern string, got {text!r}")
        try:
            out[name] = TriggerConfig.parse(name, text)
        except TriggerSpecError as exc:
            raise TriggerSpecError(
                exc.reason,
                file=reader.source,
                key=key,
                word=exc.word,
                pattern=exc.pattern,
                detail=exc.detail,
            ) from exc
    return out
