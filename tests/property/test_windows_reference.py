"""Differential tests: the window stage against a slow reference written from SPEC section 3.

The reference keeps every event. For time windows it decides, per event, which windows are
still open with the SPEC's watermark (``max ts - lateness`` over the device's events so far,
this one included), collects each window's member events, and closes a window at the first
event whose watermark reaches its end; values are recomputed from the member events in arrival
order. Sessions are simulated with explicit member lists, merging any two sessions closer than
the gap until none are. Count windows chunk each key's events by N.
"""

from __future__ import annotations

import math
from collections import defaultdict
from functools import reduce
from operator import add
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamfeat._event import Event, event_to_obj
from streamfeat._tokens import Token
from streamfeat.tasks import EngineConfig, TasksConfig, WindowConfig
from streamfeat.windows import AggSpec, AssignSpec, WindowStage
from streamfeat.windows.session import SessionLogic
from streamfeat.windows.sliding import SlidingLogic

AGGS: tuple[tuple[str, AggSpec], ...] = (
    ("n", AggSpec("count")),
    ("sum", AggSpec("sum", "args.v")),
    ("min", AggSpec("min", "args.v")),
    ("max", AggSpec("max", "args.v")),
    ("mean", AggSpec("mean", "args.v")),
    ("first", AggSpec("first", "item")),
    ("last", AggSpec("last", "args.v")),
    ("distinct", AggSpec("distinct", "args.v")),
    ("top", AggSpec("top", "args.v", 2)),
    ("top_item", AggSpec("top", "item", 1)),
    ("first_ts", AggSpec("first", "ts")),
    ("max_ts", AggSpec("max", "ts")),
)

# -- the reference ---------------------------------------------------------------------------


def _rank(v: Any) -> tuple[int, Any]:
    return (1, v) if isinstance(v, str) else (0, v)


def _norm(v: Any) -> Any:
    return ("bool", v) if isinstance(v, bool) else v


def ref_value(spec: AggSpec, events: list[Event]) -> Any:
    """One aggregate over a window's events (in arrival order), straight from SPEC section 3."""
    if spec.op == "count":
        return len(events)
    assert spec.field is not None
    vals = [e.field(spec.field) for e in events]
    vals = [v for v in vals if v is not None]
    nums = [v for v in vals if type(v) in (int, float)]
    if spec.op == "sum":
        return reduce(add, nums) if nums else None
    if spec.op == "mean":
        return reduce(add, nums) / len(nums) if nums else None
    if spec.op in ("min", "max"):
        pick = min if spec.op == "min" else max
        return pick(vals, key=_rank) if vals else None  # first of equals, like arrival order
    if spec.op == "first":
        return vals[0] if vals else None
    if spec.op == "last":
        return vals[-1] if vals else None
    if spec.op == "distinct":
        return len({_norm(v) for v in vals})
    counts: dict[Any, list[Any]] = {}
    for i, v in enumerate(vals):
        counts.setdefault(_norm(v), [v, 0, i])[1] += 1
    best = sorted(counts.values(), key=lambda c: (-c[1], c[2]))[: spec.k]
    return [[c[0], c[1]] for c in best]


def ref_key(cfg: WindowConfig, e: Event) -> str | None:
    if cfg.filter is not None and not any(t.matches(e) for t in cfg.filter):
        return None
    parts = []
    for f in cfg.key:
        v = e.field(f)
        if v is None:
            return None
        parts.append(
            v if isinstance(v, str)
            else ("true" if v else "false") if isinstance(v, bool)
            else repr(v) if isinstance(v, float) else str(v)
        )  # fmt: skip
    return "|".join(parts)


def ref_record(
    cfg: WindowConfig, dev: str, key: str, start: int, end: int, evs: list[Event], final: bool
) -> dict[str, Any]:
    values = {name: ref_value(spec, evs) for name, spec in cfg.aggregates}
    return {"kind": "window", "window": cfg.name, "device": dev, "key": key, "start": start,
            "end": end, "values": values, "forced": final, "final": final}  # fmt: skip


def ref_time_windows(
    cfg: WindowConfig, lateness: int, events: list[Event]
) -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]]]:
    """Per event index, the records emitted there; and the final records at close."""
    size, slide = cfg.assign.size, cfg.assign.slide or cfg.assign.size
    n = len(events)
    wms = []
    mx = -1
    for e in events:
        mx = max(mx, e.ts)
        wms.append(mx - lateness)
    at: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    members: dict[tuple[int, int, str], list[Event]] = defaultdict(list)
    for i, e in enumerate(events):
        key = ref_key(cfg, e)
        if key is None:
            continue
        lowest = (e.ts - size) // slide * slide  # aligned, at or below every start holding ts
        starts = [s for s in range(lowest, e.ts + 1, slide) if s <= e.ts < s + size]
        open_ = [s for s in starts if s + size > wms[i]]
        if not open_:
            at[i].append({"kind": "late", "window": cfg.name, "device": e.device, "ts": e.ts,
                          "event": event_to_obj(e)})  # fmt: skip
        for s in open_:
            members[(s + size, s, key)].append(e)
    closing: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
    final = []
    for win in sorted(members):
        end = win[0]
        j = next((j for j in range(n) if wms[j] >= end), None)
        if j is None:
            final.append(win)
        else:
            closing[j].append(win)
    dev = events[0].device if events else ""
    for j, wins in closing.items():
        for end, start, key in sorted(wins):
            at[j].append(ref_record(cfg, dev, key, start, end, members[(end, start, key)], False))
    fin = [ref_record(cfg, dev, k, s, e, members[(e, s, k)], True) for e, s, k in sorted(final)]
    return at, fin


def ref_sessions(
    cfg: WindowConfig, lateness: int, events: list[Event]
) -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]]]:
    gap = cfg.assign.size
    at: list[list[dict[str, Any]]] = [[] for _ in events]
    sessions: dict[str, list[list[int]]] = defaultdict(list)  # key -> member index lists
    mx = -1
    dev = events[0].device if events else ""

    def span(m: list[int]) -> tuple[int, int]:
        return min(events[i].ts for i in m), max(events[i].ts for i in m)

    for j, e in enumerate(events):
        mx = max(mx, e.ts)
        wm = mx - lateness
        key = ref_key(cfg, e)
        if key is not None:
            if e.ts + gap <= wm:
                at[j].append({"kind": "late", "window": cfg.name, "device": dev, "ts": e.ts,
                              "event": event_to_obj(e)})  # fmt: skip
            else:
                ss = sessions[key]
                hits = [m for m in ss if span(m)[0] - gap < e.ts < span(m)[1] + gap]
                merged = sorted([j, *(i for m in hits for i in m)])
                ss[:] = [m for m in ss if m not in hits] + [merged]
                changed = True
                while changed:  # sessions closer than the gap merge
                    changed = False
                    for a in ss:
                        for b in ss:
                            if a is not b and 0 <= span(b)[0] - span(a)[1] < gap:
                                ss[:] = [m for m in ss if m is not a and m is not b] + [
                                    sorted(a + b)
                                ]
                                changed = True
                                break
                        if changed:
                            break
        closed = []
        for k, ss in sessions.items():
            for m in list(ss):
                first, last = span(m)
                if last + gap <= wm:
                    closed.append((last + gap, first, k, m))
                    ss.remove(m)
        for end, start, k, m in sorted(closed, key=lambda c: c[:3]):
            at[j].append(ref_record(cfg, dev, k, start, end, [events[i] for i in m], False))
    rest = sorted(
        ((span(m)[1] + gap, span(m)[0], k, m) for k, ss in sessions.items() for m in ss),
        key=lambda c: c[:3],
    )
    fin = [ref_record(cfg, dev, k, s, e, [events[i] for i in m], True) for e, s, k, m in rest]
    return at, fin


def ref_count(
    cfg: WindowConfig, events: list[Event]
) -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]]]:
    size = cfg.assign.size
    at: list[list[dict[str, Any]]] = [[] for _ in events]
    pending: dict[str, list[Event]] = defaultdict(list)
    dev = events[0].device if events else ""
    for j, e in enumerate(events):
        key = ref_key(cfg, e)
        if key is None:
            continue
        pending[key].append(e)
        if len(pending[key]) == size:
            evs = pending.pop(key)
            at[j].append(ref_record(cfg, dev, key, evs[0].ts, evs[-1].ts, evs, False))
    rest = sorted(pending.items(), key=lambda kv: (kv[1][-1].ts, kv[1][0].ts, kv[0]))
    fin = [ref_record(cfg, dev, k, evs[0].ts, evs[-1].ts, evs, True) for k, evs in rest]
    return at, fin


def reference(config: TasksConfig, events: list[Event]) -> list[dict[str, Any]]:
    """Every record of one device's events, in the stage's documented order."""
    per_cfg = []
    for cfg in config.windows.values():
        lateness = config.engine.lateness if cfg.lateness is None else cfg.lateness
        if cfg.assign.kind == "session":
            per_cfg.append(ref_sessions(cfg, lateness, events))
        elif cfg.assign.kind == "count":
            per_cfg.append(ref_count(cfg, events))
        else:
            per_cfg.append(ref_time_windows(cfg, lateness, events))
    out: list[dict[str, Any]] = []
    for j in range(len(events)):
        for at, _ in per_cfg:
            out.extend(at[j])
    for _, fin in per_cfg:
        out.extend(fin)
    return out


# -- strategies --------------------------------------------------------------------------------

values = st.one_of(
    st.integers(-5, 5), st.sampled_from([0.5, -1.25, 2.0, 1e3]), st.sampled_from(["x", "y", "z"]),
    st.booleans(),
)  # fmt: skip


_MISSING = object()
_steps = st.sampled_from([-9, -4, -2, -1, 0, 0, 1, 1, 2, 3, 5, 8, 13, 21])
_rows = st.lists(
    st.tuples(
        _steps,
        st.sampled_from(["click", "view", "exposure"]),
        st.sampled_from([None, "home", "item_detail"]),
        st.sampled_from([None, "i1", "i2", "i3"]),
        st.one_of(st.just(_MISSING), values),
        st.sampled_from([None, "c1", "c2"]),
    ),
    min_size=8,
    max_size=40,
)


@st.composite
def event_lists(draw: st.DrawFn, device: str = "d") -> list[Event]:
    """Up to 40 events whose ts wander forwards and back (often equal, often at boundaries)."""
    ts = draw(st.integers(0, 50))
    out = []
    for step, etype, page, item, v, cat in draw(_rows):
        ts = max(0, ts + step)
        args: dict[str, Any] = {}
        if v is not _MISSING:
            args["v"] = v
        if cat is not None:
            args["cat"] = cat
        out.append(Event(ts, etype, device, page, item, args))
    return out


KINDS = ("tumbling", "sliding", "session", "count")


@st.composite
def window_configs(draw: st.DrawFn, name: str, kind: str | None = None) -> WindowConfig:
    kind = kind or draw(st.sampled_from(KINDS))
    if kind == "sliding":
        slide = draw(st.integers(1, 12))
        assign = AssignSpec(kind, draw(st.integers(slide, 30)), slide)
    elif kind == "count":
        assign = AssignSpec(kind, draw(st.integers(1, 5)))
    else:
        assign = AssignSpec(kind, draw(st.integers(1, 30)))
    key = draw(
        st.sampled_from([("device",), ("item",), ("args.cat",), ("page", "item"), ("args.v",)])
    )
    filt = draw(st.sampled_from([None, (Token("click"),), (Token("view"), Token("click", "home"))]))
    lateness = draw(st.one_of(st.none(), st.integers(0, 30)))
    return WindowConfig(name, assign, key, filt, lateness, AGGS)


@st.composite
def configs(draw: st.DrawFn, kind: str | None = None) -> TasksConfig:
    """One to three windows; with ``kind``, the first is of that assigner."""
    n = draw(st.integers(1, 3))
    windows = {f"w{i}": draw(window_configs(f"w{i}", kind if i == 0 else None)) for i in range(n)}
    return TasksConfig(engine=EngineConfig(lateness=draw(st.integers(0, 20))), windows=windows)


# -- helpers -----------------------------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    """Equal, with floats compared to 1e-9 (session merges add partial sums in another order)."""
    if isinstance(a, float) or isinstance(b, float):
        return type(a) is type(b) and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


def run_stage(stage: WindowStage, events: list[Event], device: str = "d") -> list[dict[str, Any]]:
    state = stage.new_state(device)
    out: list[dict[str, Any]] = []
    for i, e in enumerate(events):
        stage.process(state, i, e, out)
    stage.close(state, out)
    assert stage.idle(state)
    return out


# -- tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_every_assigner_and_aggregate_matches_the_reference(kind: str, data: st.DataObject) -> None:
    config = data.draw(configs(kind))
    events = data.draw(event_lists())
    got = run_stage(WindowStage(config), events)
    want = reference(config, events)
    assert same(got, want), (got, want)


@settings(max_examples=40)
@given(configs(), event_lists("a"), event_lists("b"), st.randoms(use_true_random=False))
def test_devices_are_independent_streams(
    config: TasksConfig, ev_a: list[Event], ev_b: list[Event], rnd: Any
) -> None:
    """Interleaving two devices changes nothing within each device."""
    stage = WindowStage(config)
    states = {"a": stage.new_state("a"), "b": stage.new_state("b")}
    index = {"a": 0, "b": 0}
    merged = [("a", e) for e in ev_a] + [("b", e) for e in ev_b]
    rnd.shuffle(merged)
    # keep each device's own order: re-sort each device's events back into place
    queues = {"a": list(ev_a), "b": list(ev_b)}
    out: list[dict[str, Any]] = []
    for dev, _ in merged:
        e = queues[dev].pop(0)
        stage.process(states[dev], index[dev], e, out)
        index[dev] += 1
    for dev in ("a", "b"):
        stage.close(states[dev], out)
    for dev, evs in (("a", ev_a), ("b", ev_b)):
        mine = [r for r in out if r["device"] == dev]
        assert same(mine, reference(config, evs))


@given(configs(), event_lists(), st.data())
def test_dump_load_resumes_exactly(
    config: TasksConfig, events: list[Event], data: st.DataObject
) -> None:
    """A snapshot through msgpack at any point, loaded into a fresh stage, carries on identically."""
    cut = data.draw(st.integers(0, len(events)))
    whole = run_stage(WindowStage(config), events)
    first = WindowStage(config)
    state = first.new_state("d")
    out: list[dict[str, Any]] = []
    for i, e in enumerate(events[:cut]):
        first.process(state, i, e, out)
    dumped = first.dump(state)
    blob = msgpack.packb(dumped, use_bin_type=True)
    second = WindowStage(config)
    restored = second.load(msgpack.unpackb(blob, raw=False, strict_map_key=False))
    assert second.dump(restored) == dumped
    for i, e in enumerate(events[cut:], cut):
        second.process(restored, i, e, out)
    second.close(restored, out)
    assert out == whole


@given(configs(), event_lists(), st.integers(0, 400))
def test_advance_closes_what_a_heartbeat_event_would(
    config: TasksConfig, events: list[Event], now: int
) -> None:
    """advance(now) closes the same windows as a filtered-out event with ts = now."""
    stage = WindowStage(config)
    a, b = stage.new_state("d"), stage.new_state("d")
    out_a: list[dict[str, Any]] = []
    out_b: list[dict[str, Any]] = []
    for i, e in enumerate(events):
        stage.process(a, i, e, out_a)
        stage.process(b, i, e, out_b)
    stage.advance(a, now, out_a)
    # a heartbeat no window admits: no key field any window uses, a type no filter names
    heartbeat = Event(now, "heartbeat_zz", "d")
    if all(w.filter is not None or w.key != ("device",) for w in config.windows.values()):
        stage.process(b, len(events), heartbeat, out_b)
        assert out_a == out_b
    assert a.maxts == max([now, *(e.ts for e in events)])


@pytest.mark.parametrize("kind", ["session", "sliding"])
@given(data=st.data())
def test_a_built_step_matches_its_reference(kind: str, data: st.DataObject) -> None:
    # the step built per config (admission and the common cases inlined) against the plain
    # method it was written from: same records, same state after every event
    cfg = data.draw(window_configs("w", kind))
    lateness, events = data.draw(st.integers(0, 20)), data.draw(event_lists())
    logic = SessionLogic(cfg, lateness) if kind == "session" else SlidingLogic(cfg, lateness)
    built, plain = logic.new_state(), logic.new_state()
    got: list[dict[str, Any]] = []
    want: list[dict[str, Any]] = []
    step, maxts = logic.step_function(), -1
    for i, e in enumerate(events):
        maxts = max(maxts, e.ts)
        step(built, i, e, maxts, "d", got)
        logic.process_reference(plain, i, e, maxts, "d", want)  # type: ignore[arg-type]
        assert got == want
        assert logic.dump(built) == logic.dump(plain)  # type: ignore[arg-type]
