"""The partial-match frontier: what a trigger keeps per segment, and how an entry joins it.

A *frontier* entry ``(s, ts_s, end, clock_s)`` says: the pattern up to some segment matched
the slice ``[s..end]``; ``ts_s`` is the ts of event ``s`` and ``clock_s`` the device's clock
there (for the partial-match limits). :func:`insert` keeps only the entries no other entry
beats for every future use (see :mod:`streamfeat.triggers._matcher` for the theory).
"""

from __future__ import annotations

__all__ = ["Entry", "Partial", "entry", "insert"]

Entry = tuple[int, int, int, int]  # (start s, ts at s, end, device clock at s)


class Partial:
    """One trigger's partial matches on one device.

    Attributes:
        last_fired: the index of the event the trigger last fired at (-1: never); a new match
            must start after it.
        frontiers: per segment ``j``, the entries whose slice matched segments ``0..j``.
    """

    __slots__ = ("frontiers", "last_fired")

    def __init__(self, k: int, last: int = -1) -> None:
        self.last_fired = last
        self.frontiers: list[list[Entry]] = [[] for _ in range(k)]


def entry(x: list[int]) -> Entry:
    return (x[0], x[1], x[2], x[3])


def insert(
    entries: list[Entry], new: Entry, horizon: int, use_ts: bool, exact: bool = False
) -> None:
    """Add ``new`` to a frontier, keeping only entries no other entry beats for every future use.

    An entry P beats A when ``P.s >= A.s``, ``P.ts >= A.ts`` (when ``within`` matters) and P can
    serve every use A can: P ends no later than A, or P ends before ``horizon`` (every future
    lookup starts after it: P is *settled*). With ``exact`` (the last segment, checked at its
    end only) only entries with the same end compare. Entries arrive in order of their end, so
    a new entry can only be beaten by older ones, and only settled entries beat older ones.
    """
    if not entries:
        entries.append(new)
        return
    s, ts, end, _ = new
    for p in entries:
        if (
            p[0] >= s
            and (not use_ts or p[1] >= ts)
            and (p[2] == end if exact else (p[2] <= end or p[2] < horizon))
        ):
            return
    if exact or end >= horizon:
        # the new entry beats only entries with its own end
        if entries[-1][2] == end:
            entries[:] = [
                a for a in entries if not (a[2] == end and s >= a[0] and (not use_ts or ts >= a[1]))
            ]
        entries.append(new)
    else:
        entries.append(new)
    if exact or entries[0][2] >= horizon or len(entries) < 2 or entries[1][2] >= horizon:
        return
    # two or more settled entries: keep their Pareto front (s up, ts down), then the rest
    n = 0
    while n < len(entries) and entries[n][2] < horizon:
        n += 1
    settled = sorted(entries[:n], key=lambda a: (-a[0], a[2]))
    front = [settled[0]]
    if use_ts:
        top = settled[0][1]
        for a in settled[1:]:
            if a[1] > top:
                front.append(a)
                top = a[1]
    front.sort(key=lambda a: a[2])
    entries[:n] = front
