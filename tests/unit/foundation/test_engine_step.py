"""The engine's per-device work (:class:`streamfeat.engine._step.Step`) against plain loops.

``reference_process_into`` below is the engine's per-event code written as loops over the
stages, and ``reference_sweep``, ``reference_close`` and the helpers under them the idle rule's
sweep, the end of input and the freeing, all on the engine's own tables. Each test runs the
same events through an engine with its own path and one run by the reference, and compares
every record, the per-device counters, the idle rule's bookkeeping and the sampled stage
timings.
"""

from __future__ import annotations

import heapq
import weakref
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamfeat import Engine, Event
from streamfeat._records import Record
from streamfeat.engine import build_engine
from streamfeat.engine._engine import _Device
from streamfeat.tasks import parse_tasks

TASKS = """
[engine]
lateness = "2s"
{idle}

[triggers]
detail = "page_enter@item_detail * page_exit@item_detail within 5m"
three = "click{{3}}"

[windows.clicks]
assign = "tumbling 2m"
filter = ["click"]
aggregate = {{ n = "count", items = "distinct item" }}

[windows.session]
assign = "session 1m"
aggregate = {{ n = "count" }}

[features.ipv]
kind = "ipv"

[features.exposure]
kind = "exposure"
"""


# the reference's idle queue: a plain heap of (key, device) entries for each engine it runs
REF_HEAPS: weakref.WeakKeyDictionary[Engine, list[tuple[int, str]]] = weakref.WeakKeyDictionary()


def ref_heap(engine: Engine) -> list[tuple[int, str]]:
    return REF_HEAPS.setdefault(engine, [])


def queued(engine: Engine) -> list[tuple[int, str]]:
    """The idle queue's entries, stale ones included, in the order the sweep takes them."""
    if engine in REF_HEAPS:
        return sorted(REF_HEAPS[engine])
    return sorted((k, n) for k, names in engine._step.queued.items() for n in names)


def all_idle(engine: Engine, states: list[Any]) -> bool:
    return all(s.idle(x) for s, x in zip(engine.stages, states, strict=True))


def reference_free(engine: Engine, dev: _Device) -> None:
    if dev.states is not None:
        kept = [
            s.residue(x) if hasattr(s, "residue") else None
            for s, x in zip(engine.stages, dev.states, strict=True)
        ]
        dev.residue = kept if any(r is not None for r in kept) else None
    dev.states = None


def reference_unspill(engine: Engine, spill: bytes) -> list[Any]:
    dumped = msgpack.unpackb(spill, raw=False, strict_map_key=False)
    return [s.load(d) for s, d in zip(engine.stages, dumped, strict=True)]


def reference_sweep(engine: Engine, out: list[Record]) -> None:
    """The idle rule's sweep (the engine module's docstring) as plain loops."""
    now = engine._step.log_ts - engine.idle_bound
    cutoff = now - (engine.idle_ms or 0)
    heap = ref_heap(engine)
    while heap and heap[0][0] <= cutoff:
        key, name = heapq.heappop(heap)
        dev = engine._devices[name]
        if dev.key != key:
            continue
        if dev.states is None and dev.spill is None:
            dev.key = None
            continue
        if dev.last > cutoff:
            dev.key = dev.last
            heapq.heappush(heap, (dev.last, name))
            continue
        if dev.states is None:
            dev.states, dev.spill = reference_unspill(engine, dev.spill or b""), None
        for stage, state in zip(engine.stages, dev.states, strict=True):
            stage.advance(state, now, out)
        engine._step.idled += 1
        dev.key = None
        if all_idle(engine, dev.states):
            reference_free(engine, dev)
            continue
        dues = [
            d
            for s, x in zip(engine.stages, dev.states, strict=True)
            if hasattr(s, "deadline") and (d := s.deadline(x)) is not None
        ]
        if dues:
            dev.key = max(min(dues) - (engine.idle_ms or 0), cutoff + 1)
            heapq.heappush(heap, (dev.key, name))
        dumped = [s.dump(x) for s, x in zip(engine.stages, dev.states, strict=True)]
        dev.spill, dev.states = msgpack.packb(dumped, use_bin_type=True), None


def reference_close(engine: Engine) -> list[Record]:
    """The end of input as plain loops: every open device closed, then freed."""
    out: list[Record] = []
    for dev in engine._devices.values():
        if dev.states is None and dev.spill is not None:
            dev.states, dev.spill = reference_unspill(engine, dev.spill), None
        if dev.states is not None:
            for stage, state in zip(engine.stages, dev.states, strict=True):
                stage.close(state, out)
            reference_free(engine, dev)
    return out


def reference_process_into(engine: Engine, event: Event, out: list[Record]) -> None:
    """The per-event path as plain loops over the stages, on the engine's own tables."""
    ts, name = event[0], event[2]
    if engine.idle_ms is not None and ts > engine._step.log_ts:
        engine._step.log_ts = ts
        heap = ref_heap(engine)
        if heap and heap[0][0] <= ts - engine.idle_bound - engine.idle_ms:
            reference_sweep(engine, out)
    dev = engine._devices.get(name)
    if dev is None:
        dev = engine._devices[name] = _Device(0, None)
    states = dev.states
    if states is None:
        if dev.spill is not None:
            states = dev.states = reference_unspill(engine, dev.spill)
            dev.spill = None
        else:
            states = dev.states = [
                s.new_state(name) if r is None else s.new_state(name, r)
                for s, r in zip(
                    engine.stages, dev.residue or [None] * len(engine.stages), strict=True
                )
            ]
    index = dev.count
    dev.count = index + 1
    engine.events += 1
    if engine.events & engine._sample_mask == 0:
        engine._timed(states, index, event, out)
    else:
        for stage, state in zip(engine.stages, states, strict=True):
            stage.process(state, index, event, out)
    if engine.idle_ms is not None:
        dev.last = max(dev.last, ts)
        if not all_idle(engine, states):
            if dev.key is None or dev.key > dev.last:
                dev.key = dev.last
                heapq.heappush(ref_heap(engine), (dev.last, name))
            return
    elif not all_idle(engine, states):
        return
    reference_free(engine, dev)


def pair(idle: str | None, sample_every: int = 4) -> tuple[Engine, Engine]:
    config = parse_tasks(TASKS.format(idle="" if idle is None else f'idle = "{idle}"'))
    # sample often, so that the timed branch runs too
    got = build_engine(config, idle=True, sample_every=sample_every)
    want = build_engine(config, idle=True, sample_every=sample_every)
    want.process_into = lambda e, out: reference_process_into(want, e, out)
    return got, want


KINDS = [
    ("page_enter", "item_detail"),
    ("page_exit", "item_detail"),
    ("click", "home_feed"),
    ("exposure", "home_feed"),
    ("page_enter", "home_feed"),
]


@st.composite
def logs(draw: st.DrawFn) -> list[Event]:
    n = draw(st.integers(1, 120))
    gap = draw(st.sampled_from([90_000, 400_000]))  # the longer: devices go quiet often
    ts, out = 1_000, []
    for _ in range(n):
        ts += draw(st.integers(-5_000, gap))  # mostly forward, sometimes back a little
        device = draw(st.sampled_from(["a", "b", "c", "d"]))
        etype, page = draw(st.sampled_from(KINDS))
        item = draw(st.sampled_from(["i1", "i2", "i3"]))
        args = {"pos": 1, "dur_ms": draw(st.integers(0, 5_000))} if etype == "exposure" else {}
        out.append(Event(max(ts, 0), etype, device, page, item, args))
    return out


def table(engine: Engine) -> list[Any]:
    """The engine's per-device bookkeeping: what the step and the reference must agree on."""
    return [
        (n, d.count, d.last, d.key, d.states is None, d.spill, d.residue)
        for n, d in sorted(engine._devices.items())
    ] + [queued(engine), engine.idled]


def run(engine: Engine, events: list[Event], *, reference: bool = False) -> list[Any]:
    """The records of ``events`` and the end of input, with the device table before the end."""
    out: list[Any] = []
    for e in events:
        engine.process_into(e, out)
    out.append(table(engine))
    out += reference_close(engine) if reference else engine.close()
    return out


@pytest.mark.parametrize("idle", [None, "3m"])
@settings(max_examples=60, deadline=None)
@given(events=logs())
def test_the_step_does_what_the_loops_do(idle: str | None, events: list[Event]) -> None:
    got, want = pair(idle)
    assert run(got, events) == run(want, events, reference=True)
    assert got.events == want.events == len(events)
    assert got.idled == want.idled
    assert got._sampled == want._sampled
    for name in "abcd":
        assert got.event_count(name) == want.event_count(name)


@pytest.mark.parametrize("idle", [None, "3m"])
def test_midway_counters_and_spills_match(idle: str | None) -> None:
    events = [
        Event(1_000, "page_enter", "a", "item_detail", "i1"),
        Event(2_000, "click", "a", "item_detail", "i1"),
        *[Event(t, "click", "b", "home_feed", "i2") for t in range(0, 12 * 60_000, 20_000)],
        Event(8 * 60_000, "page_exit", "a", "item_detail", "i1"),
    ]
    events.sort(key=lambda e: e.ts)
    got, want = pair(idle)
    for e in events:
        a: list[Record] = []
        b: list[Record] = []
        got.process_into(e, a)
        want.process_into(e, b)
        assert a == b
        assert got.open_devices == want.open_devices
        assert got.spilled_devices == want.spilled_devices
    if idle is not None:
        assert got.idled > 0


class Open:
    """A stage that keeps a device open until its event of type ``"close"``, and says so."""

    def __init__(self, name: str) -> None:
        self.name = name

    def new_state(self, device: str) -> Any:
        return [device, 0, False]

    def process(self, state: Any, index: int, event: Event, out: list[Record]) -> None:
        state[1] += 1
        state[2] = event.type != "close"
        out.append({"kind": "seen", "stage": self.name, "device": state[0], "index": index})

    def advance(self, state: Any, now_ms: int, out: list[Record]) -> None:
        out.append({"kind": "advanced", "stage": self.name, "device": state[0], "now": now_ms})

    def close(self, state: Any, out: list[Record]) -> None:
        out.append({"kind": "closed", "stage": self.name, "device": state[0], "n": state[1]})

    def idle(self, state: Any) -> bool:
        return not state[2]

    def dump(self, state: Any) -> Any:
        return state

    def load(self, data: Any) -> Any:
        return list(data)


@pytest.mark.parametrize("n", [0, 1, 2, 5])
@pytest.mark.parametrize("idle_ms", [None, 60_000])
def test_any_number_of_stages_runs_as_the_loops_do(n: int, idle_ms: int | None) -> None:
    # c goes quiet half-way (the idle rule advances it); "close" events let a device be freed
    events = [
        Event(t * 7_000, "close" if t % 5 == 4 else "x", "abc"[t % 3] if t < 29 else "ab"[t % 2])
        for t in range(60)
    ]
    got, want = (
        Engine([Open(f"s{i}") for i in range(n)], sample_every=4, idle_ms=idle_ms) for _ in range(2)
    )
    want.process_into = lambda e, out: reference_process_into(want, e, out)
    assert run(got, events) == run(want, events, reference=True)
    assert got.idled == want.idled
    assert (want.idled > 0) == (idle_ms is not None and n > 0)
    assert (
        [got.event_count(d) for d in "abc"] == [want.event_count(d) for d in "abc"] == [25, 26, 9]
    )


def test_an_engine_without_stages_counts_and_frees() -> None:
    eng = Engine([])
    assert eng.process(Event(1, "click", "a")) == []
    assert eng.event_count("a") == 1
    assert eng.open_devices == 0


def test_a_restored_engine_runs_on_its_new_tables_through_the_same_function() -> None:
    config = parse_tasks(TASKS.format(idle='idle = "3m"'))
    events = [Event(t, "click", "d", "home_feed", "i1") for t in range(0, 10 * 60_000, 30_000)]
    whole = build_engine(config, idle=True)
    want = run(whole, events)
    first = build_engine(config, idle=True)
    got: list[Record] = []
    for e in events[:7]:
        first.process_into(e, got)
    second = build_engine(config, idle=True)
    step = second.process_into  # taken before the restore, as a replay's loop takes it
    second.restore(first.snapshot())
    for e in events[7:]:
        step(e, got)
    assert [*got, table(second), *second.close()] == want
    assert second.events == len(events)


def reference_advance(engine: Engine, now_ms: int) -> list[Record]:
    """The agent's wall-time advance as plain loops."""
    out: list[Record] = []
    for dev in engine._devices.values():
        if dev.states is None and dev.spill is not None:
            dev.states, dev.spill = reference_unspill(engine, dev.spill), None
        if dev.states is None:
            continue
        for stage, state in zip(engine.stages, dev.states, strict=True):
            stage.advance(state, now_ms, out)
        if all_idle(engine, dev.states):
            reference_free(engine, dev)
    return out


@settings(max_examples=40, deadline=None)
@given(events=logs(), later=st.lists(st.integers(0, 3_600_000), min_size=1, max_size=4))
def test_wall_time_advances_as_the_loops_do(events: list[Event], later: list[int]) -> None:
    got, want = pair(None)
    a: list[Record] = []
    b: list[Record] = []
    for e in events:
        got.process_into(e, a)
        want.process_into(e, b)
    now = max(e.ts for e in events)
    for dt in sorted(later):
        a += got.advance(now + dt)
        b += reference_advance(want, now + dt)
        assert got.open_devices == want.open_devices
    assert a + got.close() == b + reference_close(want)


def test_wall_time_frees_a_device_that_holds_nothing_open_after_it() -> None:
    got, want = pair(None)
    e = Event(1_000, "page_enter", "z", "item_detail", "i1")  # a visit, a partial match
    got.process_into(e, [])
    want.process_into(e, [])
    assert got.open_devices == want.open_devices == 1
    later = 1_000 + 48 * 3_600_000  # past every limit: the visit closes, the partial is cut
    assert got.advance(later) == reference_advance(want, later) != []
    assert got.open_devices == want.open_devices == 0
    assert table(got) == table(want)
