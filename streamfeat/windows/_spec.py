"""Text forms of window assigners and aggregates (SPEC section 3), parsed into frozen specs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from math import gcd

from streamfeat._durations import parse_duration

__all__ = [
    "AGGREGATE_OPS",
    "MAX_PANES",
    "AggSpec",
    "AssignSpec",
    "parse_aggregate",
    "parse_assign",
    "parse_field",
]

AGGREGATE_OPS = ("count", "sum", "min", "max", "mean", "first", "last", "distinct", "top")
_EVENT_FIELDS = ("device", "ts", "type", "page", "item")
_ARG_RE = re.compile(r"args\.[A-Za-z0-9_.\-]{1,64}\Z")
# A sliding window is cut into panes of gcd(size, step); its state per key holds up to
# size / gcd panes, and each event's windows number size / step. Bounded so that one event can't
# allocate without limit (`sliding 365d every 1ms` is 31.5 billion panes).
MAX_PANES = 10_000


@dataclass(frozen=True, slots=True)
class AssignSpec:
    """A window assigner: ``kind`` is tumbling, sliding, session or count.

    ``size`` is the window length in ms (tumbling, sliding), the gap in ms (session), or the
    number of events (count); ``slide`` is the sliding step in ms (sliding only).
    """

    kind: str
    size: int
    slide: int = 0


@dataclass(frozen=True, slots=True)
class AggSpec:
    """An aggregate: ``op`` over ``field`` (None for count); ``k`` for ``top``."""

    op: str
    field: str | None = None
    k: int = 0


def parse_field(text: str) -> str:
    """Check that ``text`` names an event field or ``args.NAME`` and return it.

    Raises:
        ValueError: if it does not.
    """
    if text in _EVENT_FIELDS or _ARG_RE.match(text):
        return text
    msg = f"{text!r} is not an event field (device, ts, type, page, item or args.NAME)"
    raise ValueError(msg)


def parse_assign(text: str) -> AssignSpec:
    """Parse ``tumbling 1h``, ``sliding 1h every 10m``, ``session 30m`` or ``count 50``.

    >>> parse_assign("sliding 1h every 10m")
    AssignSpec(kind='sliding', size=3600000, slide=600000)

    Raises:
        ValueError: naming what was wrong.
    """
    words = text.split() if isinstance(text, str) else []
    kind = words[0] if words else ""
    if kind in ("tumbling", "session") and len(words) == 2:
        size = parse_duration(words[1])
    elif kind == "sliding" and len(words) == 4 and words[2] == "every":
        size, slide = parse_duration(words[1]), parse_duration(words[3])
        if not 0 < slide <= size:
            msg = f"sliding window step {words[3]} must be > 0 and at most the size {words[1]}"
            raise ValueError(msg)
        panes = size // gcd(size, slide)
        if panes > MAX_PANES:
            msg = (
                f"{text!r} cuts each window into {panes:,} panes (size / gcd(size, step)); "
                f"at most {MAX_PANES:,} are allowed: use a longer step"
            )
            raise ValueError(msg)
        return AssignSpec(kind, size, slide)
    elif kind == "count" and len(words) == 2 and words[1].isdigit():
        size = int(words[1])
    else:
        msg = (
            f"{text!r} is not an assigner "
            "(tumbling SIZE | sliding SIZE every STEP | session GAP | count N)"
        )
        raise ValueError(msg)
    if size <= 0:
        msg = f"{text!r}: the size must be greater than zero"
        raise ValueError(msg)
    return AssignSpec(kind, size)


def parse_aggregate(text: str) -> AggSpec:
    """Parse ``count``, ``sum F``, ..., ``distinct F`` or ``top K F``.

    >>> parse_aggregate("top 3 item")
    AggSpec(op='top', field='item', k=3)

    Raises:
        ValueError: naming what was wrong.
    """
    words = text.split() if isinstance(text, str) else []
    if words == ["count"]:
        return AggSpec("count")
    if len(words) == 2 and words[0] in AGGREGATE_OPS and words[0] not in ("count", "top"):
        return AggSpec(words[0], parse_field(words[1]))
    if len(words) == 3 and words[0] == "top":
        if not words[1].isdigit() or not 1 <= int(words[1]) <= 1000:
            msg = f"{text!r}: K of top K must be an integer in 1..1000"
            raise ValueError(msg)
        return AggSpec("top", parse_field(words[2]), int(words[1]))
    msg = f"{text!r} is not an aggregate (count, sum|min|max|mean|first|last|distinct F, top K F)"
    raise ValueError(msg)
