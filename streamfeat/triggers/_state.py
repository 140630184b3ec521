"""Per-device matcher state (see :mod:`streamfeat.triggers._matcher`) and firings."""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from streamfeat._event import Event
from streamfeat._tokens import Token
from streamfeat.triggers._condition import parse_condition
from streamfeat.triggers._frontier import Entry, Partial
from streamfeat.triggers._nfa import NfaRun
from streamfeat.triggers._pattern import CondToken, PatternToken
from streamfeat.triggers._trie import Compiled, SegKey

__all__ = [
    "OCC_PRUNE",
    "TRIM",
    "DeviceState",
    "Firing",
    "dump_key",
    "load_key",
    "trigger_record",
]


class Firing(NamedTuple):
    """One firing: the trigger, the slice's first/last index and ts, and its events."""

    trigger: str
    first: int
    last: int
    first_ts: int
    last_ts: int
    events: tuple[Event, ...]


def trigger_record(f: Firing, device: str) -> dict[str, Any]:
    """The ``trigger`` record of one firing (SPEC section 6), with the in-process attachment
    ``_events`` (the matched slice's events, for tasks)."""
    return {
        "kind": "trigger",
        "trigger": f.trigger,
        "device": device,
        "first": f.first,
        "last": f.last,
        "first_ts": f.first_ts,
        "last_ts": f.last_ts,
        "_events": f.events,
    }


class DeviceState:
    """Per-device matcher state: automaton node, recent events, frontiers (see module doc)."""

    __slots__ = ("base", "chain_starts", "clocks", "compiled", "due", "events", "last",
                 "lead_frontier", "maxts", "nfa", "node", "partials", "pending", "shared_starts",
                 "symbol_starts", "trim_at", "waiting", "watch", "without_seen")  # fmt: skip

    def __init__(self, compiled: Compiled) -> None:
        self.compiled = compiled  # the compiled set this state is synced to
        self.node = 0
        self.base = -1  # index of events[0]; -1 until the first event
        self.last = -1  # index of the last event
        self.events: list[Event] = []  # buffered events, events[i] has index base + i
        self.clocks: list[int] = []  # the device's clock (max ts so far) at each buffered event
        self.maxts = -1
        self.without_seen: dict[Token, int] = {}  # `without` token -> index of its last event
        self.partials: dict[int, Partial] = {}  # trigger -> its partial matches
        # shared first segment -> starts of its noted occurrences
        self.shared_starts: dict[int, list[int]] = {}
        # symbol -> its events (first segments of one event, shared by symbol)
        self.symbol_starts: dict[int, list[int]] = {}
        # segment -> (trigger, j): triggers whose segment j waits for its next occurrence
        self.waiting: dict[int, set[tuple[int, int]]] = {}
        self.due: dict[int, set[int]] = {}  # index -> triggers whose last segment ends there
        self.watch: set[int] = set()  # trailing `*` with `within`: checked at every event
        # leading `*` with `within`: the staircase of possible starts
        self.lead_frontier: dict[int, list[Entry]] = {}
        self.chain_starts: dict[int, list[int]] = {}  # `A * A * ... * A`: last k starts of A
        # index -> (segment, start): occurrences whose check is due at that index
        self.pending: dict[int, list[tuple[int, int]]] = {}
        self.nfa: dict[int, NfaRun] = {}  # NFA trigger -> its live partial matches
        self.trim_at = TRIM


TRIM: Final = 256  # first housekeeping pass of a device's buffer; then at twice its size
OCC_PRUNE: Final = 8  # prune a shared occurrence list when it grows past this


def dump_key(key: SegKey) -> list[Any]:
    return [None if p is None else [_dump_token(t) for t in p] for p in key]


def _dump_token(t: PatternToken) -> list[Any]:
    return [t.type, t.page] if type(t) is Token else [t.type, t.page, str(t.where)]  # type: ignore[union-attr]


def load_key(data: list[Any]) -> SegKey:
    return tuple(None if p is None else tuple(_load_token(t) for t in p) for p in data)


def _load_token(t: list[Any]) -> PatternToken:
    if len(t) == 2:
        return Token(t[0], t[1])
    return CondToken(t[0], t[1], parse_condition(t[2]))
