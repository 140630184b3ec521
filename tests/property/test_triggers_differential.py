"""Differential tests: the trigger matcher against the plain reference of docs/triggers.md.

The reference (``tests/unit/triggers/reference.py``) tries every start ``s`` for every event
and matches the slice by backtracking. Hypothesis draws patterns using every construct
(``TYPE``, ``TYPE@PAGE``, conditions ``TYPE[args.v < 2 and item = 1]``, alternatives,
``{N}``, ``+``, optional steps ``a?``, ``?``, ``*``, ``within``, ``without``, chains
``A * A * A``) over events with items and args, and event streams whose timestamps go back and forth, with small engine
limits so that cuts happen. Both drivers (per event, and pyahocorasick over the whole string)
must give exactly the reference's firings; so must a run through the engine (which frees idle
device states), a run snapshotted and restored half-way, and a run with triggers added and
removed while it goes (in one update or two, the state snapshotted then or not).
"""

from __future__ import annotations

import random

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from streamfeat._event import Event
from streamfeat.engine import Engine
from streamfeat.tasks import EngineConfig, TasksConfig
from streamfeat.triggers import Matcher, Pattern, TriggerStage, parse_pattern
from tests.unit.triggers.reference import reference_firings

TYPES = ("a", "b", "c")
PAGES = (None, "x", "y")
BIG_MS = 10**12
BIG_EVENTS = 100_000


def _token(t: str, p: str | None) -> str:
    return t if p is None else f"{t}@{p}"


plain_tokens = st.builds(_token, st.sampled_from(TYPES), st.sampled_from(PAGES))
comparisons = st.one_of(
    st.builds(
        lambda op, v: f"args.v {op} {v}",
        st.sampled_from(("=", "!=", "<", "<=", ">", ">=")),
        st.sampled_from(("0", "1", "2", "1.5", '"1"')),
    ),
    st.builds(
        lambda op, v: f"item {op} {v}",
        st.sampled_from(("=", "!=", "<")),
        st.sampled_from(("1", '"2"', "x")),
    ),
    st.builds(
        lambda op, v: f"page {op} {v}", st.sampled_from(("=", "!=")), st.sampled_from(("x", '"y"'))
    ),
    st.just("args.ok = true"),
)
conditions = st.one_of(
    comparisons,
    st.builds(lambda a, b: f"{a} and {b}", comparisons, comparisons),
    st.builds(lambda a, b, c: f"({a} or {b}) and {c}", comparisons, comparisons, comparisons),
    st.builds(lambda a, b: f"{a} or {b}", comparisons, comparisons),
)
cond_tokens = st.builds(lambda t, c: f"{t}[{c}]", plain_tokens, conditions)
tokens = st.one_of(plain_tokens, plain_tokens, cond_tokens)
atoms = st.one_of(
    tokens,
    tokens,
    st.lists(tokens, min_size=2, max_size=3).map(lambda ts: "(" + "|".join(ts) + ")"),
)
repeated = st.one_of(atoms, atoms, st.builds(lambda a, n: f"{a}{{{n}}}", atoms, st.integers(1, 3)))
steps = st.one_of(
    repeated,
    repeated,
    st.builds(lambda a, sfx: a + sfx, repeated, st.sampled_from(("+", "?", "+?"))),
    st.just("?"),
    st.just("*"),
)


@st.composite
def pattern_texts(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 5)) == 0:  # a chain `A * A * ... * A`
        atom = draw(st.one_of(tokens, st.just("?"), atoms, st.builds(lambda a: a + "+", atoms)))
        body = " * ".join([atom] * draw(st.integers(2, 4)))
    else:
        body = " ".join(draw(st.lists(steps, min_size=1, max_size=4)))
    if draw(st.booleans()):
        body += f" within {draw(st.integers(0, 25))}ms"
    if draw(st.integers(0, 2)) == 0:
        body += " without " + ",".join(draw(st.lists(plain_tokens, min_size=1, max_size=2)))
    return body


@st.composite
def event_streams(draw: st.DrawFn, max_size: int = 30) -> list[Event]:
    n = draw(st.integers(1, max_size))
    ts = draw(st.integers(1_000, 1_100))
    out = []
    for _ in range(n):
        ts = max(0, ts + draw(st.integers(-8, 10)))  # timestamps go backwards too
        args = draw(
            st.fixed_dictionaries({}, optional={"v": st.sampled_from((0, 1, 2, 1.5, "1")),
                                                "ok": st.booleans()})
        )  # fmt: skip
        out.append(
            Event(
                ts,
                draw(st.sampled_from((*TYPES, "d"))),
                "dev",
                draw(st.sampled_from(PAGES)),
                draw(st.sampled_from((None, "1", "2", "x"))),
                args,
            )
        )
    return out


triggers = st.lists(pattern_texts(), min_size=1, max_size=5).map(
    lambda texts: {f"t{i}": parse_pattern(t, name=f"t{i}") for i, t in enumerate(texts)}
)
limits = st.tuples(st.sampled_from((BIG_EVENTS, 6, 3)), st.sampled_from((BIG_MS, 20, 8)))


def _step_all(m: Matcher, events: list[Event]) -> list[tuple[str, int, int]]:
    state = m.new_state()
    out = []
    for i, ev in enumerate(events):
        for f in m.step(state, i, ev):
            assert f.events == tuple(events[f.first : f.last + 1])
            assert (f.first_ts, f.last_ts) == (events[f.first].ts, events[f.last].ts)
            out.append((f.trigger, f.first, f.last))
    return out


@given(triggers, event_streams(), limits)
def test_both_drivers_equal_the_reference(
    trigs: dict[str, Pattern], events: list[Event], lim: tuple[int, int]
) -> None:
    n_lim, ms_lim = lim
    expected = reference_firings(trigs, events, limit_ms=ms_lim, limit_events=n_lim)
    stepped = _step_all(Matcher(trigs, limit_ms=ms_lim, limit_events=n_lim), events)
    batch = [
        (f.trigger, f.first, f.last)
        for f in Matcher(trigs, limit_ms=ms_lim, limit_events=n_lim).run_batch(events)
    ]
    assert stepped == expected
    assert batch == expected


def _config(trigs: dict[str, Pattern], n_lim: int, ms_lim: int) -> TasksConfig:
    return TasksConfig(
        engine=EngineConfig(partial_limit=ms_lim, partial_limit_events=n_lim),
        triggers={name: p.text for name, p in trigs.items()},
    )


@given(triggers, event_streams(), limits, st.data())
def test_engine_with_freeing_and_a_snapshot_equals_the_reference(
    trigs: dict[str, Pattern], events: list[Event], lim: tuple[int, int], data: st.DataObject
) -> None:
    n_lim, ms_lim = lim
    cfg = _config(trigs, n_lim, ms_lim)
    expected = reference_firings(trigs, events, limit_ms=ms_lim, limit_events=n_lim)
    cut = data.draw(st.integers(0, len(events)))
    engine = Engine([TriggerStage(cfg)])
    got = []
    for ev in events[:cut]:
        got += engine.process(ev)
    snapshot = engine.snapshot()
    resumed = Engine([TriggerStage(cfg)])  # a fresh process: same tasks file, restored state
    resumed.restore(snapshot)
    for ev in events[cut:]:
        got += resumed.process(ev)
    assert [(r["trigger"], r["first"], r["last"]) for r in got] == expected
    for r in got:
        assert r["_events"] == tuple(events[r["first"] : r["last"] + 1])


@given(triggers, pattern_texts(), event_streams(max_size=25), st.data())
def test_hot_add_and_remove_leave_the_others_alone(
    trigs: dict[str, Pattern], added_text: str, events: list[Event], data: st.DataObject
) -> None:
    k = data.draw(st.integers(0, len(events)))
    removed = data.draw(st.sampled_from(sorted(trigs)))
    at_once = data.draw(st.booleans())  # one update() (one rebuild), or add() then remove()
    snapshot = data.draw(st.booleans())  # the state goes through dump/load (msgpack), or not
    added = parse_pattern(added_text, name="new")
    m = Matcher(trigs, limit_ms=BIG_MS, limit_events=BIG_EVENTS)
    state = m.new_state()
    got = []
    for i, ev in enumerate(events):
        if i == k:
            if at_once:
                m.update({"new": added}, [removed])
            else:
                m.add("new", added)
                m.remove(removed)
            if snapshot:
                dumped = msgpack.unpackb(msgpack.packb(m.dump(state)), strict_map_key=False)
                state = m.load(dumped)
        got += [(f.trigger, f.first, f.last) for f in m.step(state, i, ev)]
    full = reference_firings(trigs, events, limit_ms=BIG_MS, limit_events=BIG_EVENTS)
    expected = [f for f in full if f[0] != removed or f[2] < k]
    suffix = reference_firings({"new": added}, events[k:], limit_ms=BIG_MS, limit_events=BIG_EVENTS)
    expected += [(n, s + k, e + k) for n, s, e in suffix]
    order = {name: i for i, name in enumerate([*trigs, "new"])}
    expected.sort(key=lambda f: (f[2], order[f[0]]))
    assert got == expected


@settings(max_examples=12)
@given(triggers, st.integers(0, 2**32), st.sampled_from((12, 40)), st.sampled_from((BIG_MS, 60)))
def test_long_streams_exercise_housekeeping(
    trigs: dict[str, Pattern], seed: int, n_lim: int, ms_lim: int
) -> None:
    """Hundreds of events: buffer trimming, occurrence pruning and limit cuts all happen."""
    rng = random.Random(seed)
    ts, events = 1_000, []
    for _ in range(rng.randint(300, 600)):
        ts = max(0, ts + rng.randint(-6, 8))
        events.append(Event(ts, rng.choice((*TYPES, "d")), "dev", rng.choice(PAGES)))
    expected = reference_firings(trigs, events, limit_ms=ms_lim, limit_events=n_lim)
    m = Matcher(trigs, limit_ms=ms_lim, limit_events=n_lim)
    assert _step_all(m, events) == expected
    batch = Matcher(trigs, limit_ms=ms_lim, limit_events=n_lim).run_batch(events)
    assert [(f.trigger, f.first, f.last) for f in batch] == expected
