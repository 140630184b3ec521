"""Durations as the tasks file and trigger language write them: ``250ms``, ``30s``, ``5m``, ``1h``, ``7d``."""

from __future__ import annotations

import re

__all__ = ["MAX_DURATION_MS", "format_duration", "parse_duration"]

_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_RE = re.compile(r"(\d+)(ms|s|m|h|d)\Z")
# The longest duration accepted anywhere (100 years): far beyond any window, lateness or limit,
# and far inside the integers that snapshots and the wire carry (a lateness of 10**20 days
# used to pass the loader and break the first snapshot).
MAX_DURATION_MS = 36_500 * 86_400_000


def parse_duration(text: str) -> int:
    """Return the duration ``text`` in milliseconds.

    >>> parse_duration("30s"), parse_duration("5m"), parse_duration("250ms")
    (30000, 300000, 250)

    Raises:
        ValueError: if ``text`` is not an integer followed by ms, s, m, h or d, or is longer
            than :data:`MAX_DURATION_MS` (``36500d``).
    """
    m = _RE.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        msg = f"{text!r} is not a duration (an integer and a unit: ms, s, m, h, d; e.g. 30s)"
        raise ValueError(msg)
    digits = m.group(1)
    ms = int(digits) * _UNITS[m.group(2)] if len(digits) <= 20 else MAX_DURATION_MS + 1
    if ms > MAX_DURATION_MS:
        msg = f"{text.strip()!r} is longer than the longest duration accepted, 36500d (100 years)"
        raise ValueError(msg)
    return ms


def format_duration(ms: int) -> str:
    """Return the shortest exact text form of ``ms`` milliseconds (inverse of parse_duration)."""
    for unit in ("d", "h", "m", "s"):
        if ms and ms % _UNITS[unit] == 0:
            return f"{ms // _UNITS[unit]}{unit}"
    return f"{ms}ms"
