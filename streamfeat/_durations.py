"""Durations as the tasks file and trigger language write them: ``250ms``, ``30s``, ``5m``, ``1h``, ``7d``."""

from __future__ import annotations

import re

__all__ = ["format_duration", "parse_duration"]

_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_RE = re.compile(r"(\d+)(ms|s|m|h|d)\Z")


def parse_duration(text: str) -> int:
    """Return the duration ``text`` in milliseconds.

    >>> parse_duration("30s"), parse_duration("5m"), parse_duration("250ms")
    (30000, 300000, 250)

    Raises:
        ValueError: if ``text`` is not an integer followed by ms, s, m, h or d.
    """
    m = _RE.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        msg = f"{text!r} is not a duration (an integer and a unit: ms, s, m, h, d; e.g. 30s)"
        raise ValueError(msg)
    return int(m.group(1)) * _UNITS[m.group(2)]


def format_duration(ms: int) -> str:
    """Return the shortest exact text form of ``ms`` milliseconds (inverse of parse_duration)."""
    for unit in ("d", "h", "m", "s"):
        if ms and ms % _UNITS[unit] == 0:
            return f"{ms // _UNITS[unit]}{unit}"
    return f"{ms}ms"
