"""Keeping a device's matcher state in step with the compiled trigger set.

A hot add or remove of a trigger rebuilds the automaton; each device moves onto the new one at
its next event (:func:`resync`). A snapshot is loaded the same way. Both rebuild the waiting
index (:func:`rewait`) and the per-symbol start lists (:func:`by_symbol`).
"""

from __future__ import annotations

from collections.abc import Iterable

from streamfeat.triggers._frontier import Partial
from streamfeat.triggers._state import DeviceState
from streamfeat.triggers._trie import Compiled

__all__ = ["by_symbol", "pending_survives", "resync", "rewait"]


def resync(c: Compiled, st: DeviceState) -> None:
    """Bring a device synced to an older compiled set onto the current one.

    Symbols and the automaton state are recomputed from the buffered events; shared
    first-segment occurrences are carried over by their tokens; the frontiers of the
    triggers that stay are kept as they are.
    """
    old = st.compiled
    st.node = 0
    for ev in st.events[-c.max_segment :]:
        st.node = c.step(st.node, c.symbol(ev))
    occ: dict[int, list[int]] = {}
    starts = {x for v in st.symbol_starts.values() for x in v}
    for sid, entries in st.shared_starts.items():
        new = c.sid_of_key.get(old.seg_keys[sid])
        if new is not None and new in c.sym_first:
            starts.update(entries)
        elif new is not None and new in c.after_first:
            occ[new] = entries
    st.shared_starts = occ
    st.symbol_starts = by_symbol(c, st, starts)
    pend: dict[int, list[tuple[int, int]]] = {}
    for at, items in st.pending.items():
        for sid, b in items:
            new = c.sid_of_key.get(old.seg_keys[sid])
            if new is not None and new in c.used and pending_survives(c, st, new, b):
                pend.setdefault(at, []).append((new, b))
    st.pending = pend
    for tid in [t for t in st.partials if t not in c.plans]:
        del st.partials[tid]
    for tid in [t for t in st.lead_frontier if t not in c.plans]:
        del st.lead_frontier[tid]
    for tid in [t for t in st.chain_starts if t not in c.plans]:
        del st.chain_starts[tid]
    st.watch &= c.plans.keys()
    for tid, plan in c.plans.items():
        if c.added[tid] > old.generation:  # new since: no match may start before now
            st.partials[tid] = Partial(len(plan.segments), st.last)
    st.compiled = c
    rewait(c, st)


def rewait(c: Compiled, st: DeviceState) -> None:
    """Rebuild the waiting index from the occurrences and frontiers."""
    st.waiting = {}
    for sid in st.shared_starts:
        for tid, j in c.after_first[sid]:
            st.waiting.setdefault(c.plans[tid].segments[1], set()).add((tid, j))
    for sym in st.symbol_starts:
        for tid, j in c.sym_users[sym]:
            st.waiting.setdefault(c.plans[tid].segments[1], set()).add((tid, j))
    for tid, tr in st.partials.items():
        segs = c.plans[tid].segments
        for j in range(1, len(segs)):
            if tr.frontiers[j - 1]:
                st.waiting.setdefault(segs[j], set()).add((tid, j))


def by_symbol(c: Compiled, st: DeviceState, starts: Iterable[int]) -> dict[int, list[int]]:
    """Sort event indices into the per-symbol lists of the current compiled set."""
    out: dict[int, list[int]] = {}
    for x in sorted(starts):
        if x >= st.base:
            sym = c.symbol(st.events[x - st.base])
            if sym in c.sym_users:
                out.setdefault(sym, []).append(x)
    return out


def pending_survives(c: Compiled, st: DeviceState, sid: int, b: int) -> bool:
    """Whether an occurrence of segment ``sid`` at ``b``, whose check is pending, stays pending
    on the compiled set ``c``.

    The pending check only covers the positions outside the segment's keyword, and a rebuild
    may choose another keyword (position classes change with the symbols). If the new keyword
    ends after the last event, drop the entry: the automaton reports the keyword when it
    completes. Otherwise the automaton has passed it, so its positions are checked here.
    """
    seg = c.segments[sid]
    off = b - st.base
    if b + seg.kw_end > st.last or off < 0:
        return False
    events, symbol, positions = st.events, c.symbol, seg.positions
    for i in range(seg.kw_start, seg.kw_end + 1):
        cls = positions[i]
        if cls is None or symbol(events[off + i]) not in cls:
            return False
    return True
