"""Triggers with ``+`` or optional steps: a small NFA per trigger, stepped on candidate events.

Theory of operation
-------------------
A pattern whose steps all have a fixed length splits into fixed-length segments that the
shared automaton finds (:mod:`streamfeat.triggers._trie`). ``a+`` and ``a?`` make a run of
positions vary in length, so such a trigger is compiled into a Thompson NFA instead: one state
per position boundary, a transition per position (its tokens, or ``None`` for any event), a
self-loop for ``*``, an epsilon back to the block's entry for ``+`` and an epsilon over the
block for an optional step (each block gets a fresh entry state, so a ``+`` never loops into the
``*`` before it).

Per device, a trigger with a live partial match keeps an :class:`NfaRun`: for each NFA state,
the starts ``(s, ts_s, clock_s)`` of the slices ``[s..e]`` that reach it. Only the starts no
other start beats are kept (a larger ``s`` with a ts at least as large serves every future use
as well: later floor, shorter span, inside the limits longer), so without ``within`` a state
keeps one start. At event ``e`` a start ``s = e`` enters the start states, the event moves
every start along the transitions it matches, and when the accepting state holds a valid start
(after the last firing and the last ``without`` event, inside the limits and ``within``) the
trigger fires with the largest one; then the run is cleared. This is exactly the shortest-match
rule of docs/triggers.md, for any pattern.

The shared automaton's alphabet still decides the work: an event whose symbol no token of the
trigger names (a *foreign* event) can only move ``*`` and ``?``. A trigger without ``?`` steps
(and without a ``*`` that matters at either end) is therefore stepped only at events of its
own symbols (for a run to start, a symbol of its first step): the foreign events in between
are applied at once when the next own event comes (keep the states with a ``*`` loop, drop the
rest: applying that twice is applying it once). Conditions are checked only on the events whose
symbol matched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from streamfeat._event import Event
from streamfeat._tokens import Token
from streamfeat.triggers._pattern import Pattern, PatternToken

__all__ = ["NfaEntry", "NfaPlan", "NfaRun", "build_nfa"]

NfaEntry = tuple[int, int, int]  # (start s, ts at s, device clock at s)
Move = tuple[tuple[PatternToken, ...] | None, int]  # (tokens, or None for any event; target)


class NfaRun:
    """One NFA trigger's partial matches on one device.

    Attributes:
        at: the index of the last event applied to the run.
        states: NFA state -> the starts that reach it (see the module doc).
    """

    __slots__ = ("at", "states")

    def __init__(self, at: int) -> None:
        self.at = at
        self.states: dict[int, list[NfaEntry]] = {}


@dataclass(frozen=True, slots=True)
class NfaPlan:
    """One trigger compiled to an NFA (see the module doc)."""

    tid: int
    name: str
    text: str  # the pattern's text: a snapshot's run is kept only for the same text
    within: int | None
    without: tuple[Token, ...]
    moves: tuple[tuple[Move, ...], ...]  # per state
    closure: tuple[tuple[int, ...], ...]  # per state: the states its epsilons reach (itself too)
    start: tuple[int, ...]
    accept: int
    loops: frozenset[int]  # states with a `*` self-loop
    alphabet: frozenset[int]  # the symbols its tokens name
    first: frozenset[int]  # the symbols a match may start with
    first_any: bool  # a match may start with any event
    every: bool  # foreign events matter beyond `*` (a `?`, or a `*` at either end)

    def step(self, run: NfaRun, event: Event, e: int, ts: int, clock: int, lo: int) -> None:
        """Apply event ``e`` (foreign events since ``run.at`` first); starts ``<= lo`` die."""
        if run.at < e - 1 and not self.every:
            self._foreign(run)
        use_ts = self.within is not None
        cur = run.states
        if e > lo:
            for q in self.start:
                _merge(cur.setdefault(q, []), [(e, ts, clock)], use_ts)
        nxt: dict[int, list[NfaEntry]] = {}
        for q, entries in cur.items():
            live = [x for x in entries if x[0] > lo]
            if not live:
                continue
            for toks, q2 in self.moves[q]:
                if toks is None or any(t.matches(event) for t in toks):
                    for q3 in self.closure[q2]:
                        _merge(nxt.setdefault(q3, []), live, use_ts)
        run.states = {q: v for q, v in nxt.items() if v}
        run.at = e

    def _foreign(self, run: NfaRun) -> None:
        """Apply one (or several) events no token of the trigger names."""
        use_ts = self.within is not None
        nxt: dict[int, list[NfaEntry]] = {}
        for q, entries in run.states.items():
            if q in self.loops:
                for q2 in self.closure[q]:
                    _merge(nxt.setdefault(q2, []), entries, use_ts)
        run.states = nxt


def _merge(into: list[NfaEntry], new: list[NfaEntry], use_ts: bool) -> None:
    """Add ``new`` to ``into``, keeping only starts no other start beats."""
    for x in new:
        if any(p[0] >= x[0] and (not use_ts or p[1] >= x[1]) for p in into):
            continue
        into[:] = [p for p in into if not (x[0] >= p[0] and (not use_ts or x[1] >= p[1]))]
        into.append(x)


def build_nfa(
    tid: int,
    name: str,
    pattern: Pattern,
    symbols: Callable[[tuple[PatternToken, ...]], frozenset[int]],
) -> NfaPlan:
    """Compile ``pattern`` into an :class:`NfaPlan`; ``symbols`` gives a position's symbols."""
    moves: list[list[Move]] = [[]]
    eps: list[list[int]] = [[]]

    def new() -> int:
        moves.append([])
        eps.append([])
        return len(moves) - 1

    steps = list(pattern.steps)
    # a leading or trailing `*` changes nothing without `within`, unless the rest of the
    # pattern can match no event at all (`* a?` matches every event)
    if pattern.within is None and any(s.kind != "star" and not s.optional for s in steps):
        while steps[0].kind == "star":
            steps.pop(0)
        while steps[-1].kind == "star":
            steps.pop()
    cur = 0
    loops: set[int] = set()
    for step in steps:
        if step.kind == "star":
            q = new()
            eps[cur].append(q)
            moves[q].append((None, q))
            loops.add(q)
            cur = q
        elif step.kind == "any":
            q = new()
            moves[cur].append((None, q))
            cur = q
        else:
            entry = new()
            eps[cur].append(entry)
            cur = entry
            for _ in range(step.count):
                q = new()
                moves[cur].append((step.tokens, q))
                cur = q
            if step.plus:
                eps[cur].append(entry)
            if step.optional:
                eps[entry].append(cur)
    closure = tuple(tuple(sorted(_closure(q, eps))) for q in range(len(moves)))
    alphabet: set[int] = set()
    for ms in moves:
        for toks, _ in ms:
            if toks is not None:
                alphabet |= symbols(toks)
    first: set[int] = set()
    first_any = False
    for q in closure[0]:
        for toks, _ in moves[q]:
            if toks is None:
                first_any = True
            else:
                first |= symbols(toks)
    any_moves = any(toks is None and q2 != q for q, ms in enumerate(moves) for toks, q2 in ms)
    every = any_moves or first_any or cur in loops or any(q in loops for q in closure[cur])
    return NfaPlan(
        tid, name, pattern.text or str(pattern), pattern.within, pattern.without,
        tuple(tuple(m) for m in moves), closure, closure[0], cur, frozenset(loops),
        frozenset(alphabet), frozenset(first), first_any, every,
    )  # fmt: skip


def _closure(q: int, eps: list[list[int]]) -> set[int]:
    seen = {q}
    todo = [q]
    while todo:
        for r in eps[todo.pop()]:
            if r not in seen:
                seen.add(r)
                todo.append(r)
    return seen
