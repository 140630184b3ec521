"""Snapshots of a device's matcher state: msgpack-able data naming triggers and segments by
their text (not by internal ids), so that a snapshot survives a restart with the same tasks file
and a trigger that no longer exists is simply dropped on load."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamfeat._event import event_from_obj, event_to_obj
from streamfeat._tokens import Token
from streamfeat.triggers._state import TRIM, DeviceState, Trig, dump_key, entry, load_key

if TYPE_CHECKING:
    from streamfeat.triggers._matcher import Matcher

__all__ = ["dump_state", "load_state"]


def dump_state(self: Matcher, st: DeviceState) -> dict[str, Any]:
    """Return a msgpack-able form of ``st`` (trigger names and segment tokens, not ids)."""
    if st.c is not self.c:
        self._resync(st)
    plans = self.c.plans
    keys = self.c.seg_keys
    return {
        "base": st.base,
        "last": st.last,
        "maxts": st.maxts,
        "events": [event_to_obj(ev) for ev in st.events],
        "clk": st.clk,
        "seen": [[t.type, t.page, i] for t, i in st.seen.items()],
        "occ": [[dump_key(keys[sid]), list(v)] for sid, v in st.occ.items()],
        "symocc": sorted({x for v in st.symocc.values() for x in v}),
        "trig": {
            plans[t].name: [tr.L, [[list(x) for x in f] for f in tr.F]] for t, tr in st.trig.items()
        },
        "due": [[i, sorted(plans[t].name for t in ts)] for i, ts in st.due.items()],
        "watch": sorted(plans[t].name for t in st.watch),
        "lead": {plans[t].name: [list(x) for x in v] for t, v in st.lead.items()},
        "chain": {plans[t].name: list(v) for t, v in st.chain.items()},
        "pend": [[at, [[dump_key(keys[sid]), b] for sid, b in v]] for at, v in st.pend.items()],
    }


def load_state(self: Matcher, data: dict[str, Any]) -> DeviceState:
    """Rebuild a state from :meth:`dump` (triggers no longer registered are dropped)."""
    c = self.c
    st = DeviceState(c)
    st.base, st.last, st.maxts = data["base"], data["last"], data["maxts"]
    st.events = [event_from_obj(o) for o in data["events"]]
    st.clk = list(data["clk"])
    st.seen = {Token(t, p): i for t, p, i in data["seen"]}
    for key, entries in data["occ"]:
        sid = c.sid_of_key.get(load_key(key))
        if sid is not None and sid in c.after_first:
            st.occ[sid] = list(entries)
    by_name = c.by_name
    for name, (last, frontiers) in data["trig"].items():
        tid = by_name.get(name)
        if tid is not None and len(frontiers) == len(c.plans[tid].segments):
            tr = st.trig[tid] = Trig(0, last)
            tr.F = [[entry(x) for x in f] for f in frontiers]
    for i, names in data["due"]:
        tids = {by_name[n] for n in names if n in by_name}
        if tids:
            st.due[i] = tids
    st.watch = {by_name[n] for n in data["watch"] if n in by_name}
    st.lead = {by_name[n]: [entry(x) for x in v] for n, v in data["lead"].items() if n in by_name}
    st.chain = {by_name[n]: list(v) for n, v in data["chain"].items() if n in by_name}
    st.symocc = self._by_symbol(st, data["symocc"])
    for at, items in data["pend"]:
        for key, b in items:
            sid = c.sid_of_key.get(load_key(key))
            if sid is not None and sid in c.used:
                st.pend.setdefault(at, []).append((sid, b))
    for ev in st.events[-c.max_segment :]:
        st.node = c.step(st.node, c.symbol(ev))
    self._rewait(st)
    st.trim_at = max(TRIM, 2 * len(st.events))
    return st
