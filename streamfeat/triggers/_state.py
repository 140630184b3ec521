"""Per-device matcher state and its frontier entries (see :mod:`streamfeat.triggers._matcher`)."""

from __future__ import annotations

from typing import Any, NamedTuple

from streamfeat._event import Event
from streamfeat._tokens import Token
from streamfeat.triggers._trie import Compiled, SegKey

__all__ = [
    "OCC_PRUNE",
    "TRIM",
    "DeviceState",
    "Entry",
    "Firing",
    "Trig",
    "dump_key",
    "entry",
    "insert",
    "load_key",
]

Entry = tuple[int, int, int, int]  # (s, ts_s, end, device clock at s)


class Firing(NamedTuple):
    """One firing: the trigger, the slice's first/last index and ts, and its events."""

    trigger: str
    first: int
    last: int
    first_ts: int
    last_ts: int
    events: tuple[Event, ...]


class Trig:
    __slots__ = ("F", "L")

    def __init__(self, k: int, last: int = -1) -> None:
        self.L = last
        self.F: list[list[Entry]] = [[] for _ in range(k)]


class DeviceState:
    """Per-device matcher state: automaton node, recent events, frontiers (see module doc)."""

    __slots__ = ("base", "c", "chain", "clk", "due", "events", "last", "lead", "maxts", "node",
                 "occ", "pend", "seen", "symocc", "trig", "trim_at", "wait", "watch")  # fmt: skip

    def __init__(self, c: Compiled) -> None:
        self.c = c  # the compiled set this state is synced to
        self.node = 0
        self.base = -1  # index of events[0]; -1 until the first event
        self.last = -1  # index of the last event
        self.events: list[Event] = []
        self.clk: list[int] = []  # the device's clock at each buffered event
        self.maxts = -1
        self.seen: dict[Token, int] = {}  # `without` token -> index of its last event
        self.trig: dict[int, Trig] = {}
        self.occ: dict[int, list[int]] = {}  # shared first segment -> starts of its occurrences
        self.symocc: dict[int, list[int]] = {}  # symbol -> its events (one-event first segments)
        self.wait: dict[int, set[tuple[int, int]]] = {}  # segment -> (trigger, j) waiting on it
        self.due: dict[int, set[int]] = {}  # index -> triggers whose last segment ends there
        self.watch: set[int] = set()  # trailing `*` with `within`: checked at every event
        self.lead: dict[int, list[Entry]] = {}  # leading `*` with `within`: start staircase
        self.chain: dict[int, list[int]] = {}  # `A * A * ... * A`: the last k starts of A
        self.pend: dict[int, list[tuple[int, int]]] = {}  # index -> (segment, start) to check
        self.trim_at = TRIM


TRIM = 256  # first housekeeping pass of a device's buffer; then at twice its size
OCC_PRUNE = 8  # prune a shared occurrence list when it grows past this


def dump_key(key: SegKey) -> list[Any]:
    return [None if p is None else [[t.type, t.page] for t in p] for p in key]


def load_key(data: list[Any]) -> SegKey:
    return tuple(None if p is None else tuple(Token(t, pg) for t, pg in p) for p in data)


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
