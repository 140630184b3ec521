"""Checking the values of a parsed TOML document, with errors naming the file and dotted key.

Every subsystem parses its own tables of the tasks file (windows, features, triggers, the
admission spec) with one :class:`TableReader`, so a refusal reads the same wherever it comes
from: ``FILE: `windows.clicks.assign`: REASON``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from streamfeat._durations import parse_duration
from streamfeat.errors import ConfigError

__all__ = ["TableReader"]

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}\Z")


class TableReader:
    """Checks values read from the document ``source`` names (None: no file).

    Every check returns the value in its checked form or raises :class:`ConfigError` carrying
    ``source`` and the dotted key; nothing is kept between calls.
    """

    def __init__(self, source: str | None) -> None:
        self.source = source

    def fail(self, key: str, reason: str) -> ConfigError:
        """Return the error to raise for ``key``."""
        return ConfigError(reason, file=self.source, key=key)

    def table(self, doc: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        """Return the sub-table at the last part of ``key`` (empty if absent); refuse unknown keys."""
        value = doc.get(key.rsplit(".", 1)[-1], {})
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, got {type(value).__name__}")
        for k in value:
            if allowed and k not in allowed:
                raise self.fail(f"{key}.{k}", f"is not a known key (known: {', '.join(allowed)})")
        return value

    def duration(self, key: str, value: object, *, minimum: int = 0) -> int:
        """Return a duration string such as ``"30s"`` in ms."""
        if not isinstance(value, str):
            raise self.fail(key, f'must be a duration string such as "30s", got {value!r}')
        try:
            ms = parse_duration(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from exc
        if ms < minimum:
            raise self.fail(key, f"must be at least {minimum} ms, got {value}")
        return ms

    def integer(self, key: str, value: object, *, minimum: int, maximum: int | None = None) -> int:
        """Return an integer of at least ``minimum`` and at most ``maximum`` (bools refused)."""
        if type(value) is not int or value < minimum:
            raise self.fail(key, f"must be an integer >= {minimum}, got {value!r}")
        if maximum is not None and value > maximum:
            raise self.fail(key, f"must be at most {maximum:,}, got {value:,}")
        return value

    def number(self, key: str, value: object, *, minimum: float) -> float:
        """Return a finite int or float of at least ``minimum``, as a float (nan, inf refused)."""
        if type(value) not in (int, float) or value < minimum:  # type: ignore[operator]
            raise self.fail(key, f"must be a number >= {minimum}, got {value!r}")
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise self.fail(key, f"must be a finite number, got {value!r}")
        return float(value)  # type: ignore[arg-type]

    def strings(self, key: str, value: object) -> tuple[str, ...]:
        """Return a list of strings as a tuple."""
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, f"must be a list of strings, got {value!r}")
        return tuple(value)

    def name(self, key: str, name: str) -> str:
        """Return ``name`` if it is a valid section entry name."""
        if not _NAME_RE.match(name):
            raise self.fail(key, "names must match [A-Za-z_][A-Za-z0-9_.-]{0,63}")
        return name
