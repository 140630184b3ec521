"""switch_engine: a new tasks file keeps the state of what did not change, nothing else."""

from __future__ import annotations

import random

from streamfeat import Event
from streamfeat.agent import diff_configs, switch_engine
from streamfeat.engine._build import build_engine
from streamfeat.tasks import parse_tasks

from .conftest import BASE

T0 = 1_767_225_600_000


def _events(n: int, seed: int, device: str = "d") -> list[Event]:
    rng = random.Random(seed)
    out, ts = [], T0
    for i in range(n):
        ts += rng.randrange(0, 20_000)
        kind = rng.choice(["click", "exposure", "scroll"])
        out.append(Event(ts, kind, device, "home_feed", str(i % 7)))
    return out


def _counts(records: list[dict]) -> int:
    return sum(
        r["values"]["n"] for r in records if r["kind"] == "window" and r["window"] == "all_1m"
    )


def test_unchanged_window_counts_every_event_across_a_switch() -> None:
    old = parse_tasks(BASE)
    new = parse_tasks(
        BASE.replace("[windows.clicks_1m]", "[windows.scrolls_1m]").replace(
            'filter = ["click"]', 'filter = ["scroll"]'
        )
    )
    events = _events(300, 1)
    cut = next(i for i in range(150, 300) if events[i - 1].type == "click")  # clicks_1m is open
    engine = build_engine(old)
    out: list[dict] = []
    for ev in events[:cut]:
        engine.process_into(ev, out)
    engine2, closed, report = switch_engine(engine, old, new)
    out += closed
    for ev in events[cut:]:
        engine2.process_into(ev, out)
    out += engine2.close()
    assert _counts(out) == len(events)  # all_1m kept its open window: nothing lost, nothing twice
    assert report.added == {"windows": ["scrolls_1m"]}
    assert report.removed == {"windows": ["clicks_1m"]}
    assert "all_1m" in report.kept["windows"]
    # the removed window's open windows came out final at the switch
    assert closed
    assert all(r["window"] == "clicks_1m" and r["final"] for r in closed)
    # the new window only saw events after the switch
    scrolls = sum(
        r["values"]["n"] for r in out if r["kind"] == "window" and r["window"] == "scrolls_1m"
    )
    assert scrolls == sum(1 for e in events[cut:] if e.type == "scroll")
    # event indexes go on where they were
    assert engine2.event_count("d") == len(events)


def test_same_result_as_an_engine_that_never_switched_for_kept_stages() -> None:
    old = parse_tasks(BASE)
    new = parse_tasks(
        BASE.replace(
            'two_clicks = "click click"', 'two_clicks = "click click"\nthree = "exposure{3}"'
        )
    )
    events = _events(400, 2)
    ref = build_engine(old)
    ref_out: list[dict] = []
    for ev in events:
        ref.process_into(ev, ref_out)
    ref_out += ref.close()
    engine = build_engine(old)
    out: list[dict] = []
    for ev in events[:123]:
        engine.process_into(ev, out)
    engine, closed, _ = switch_engine(engine, old, new)
    assert closed == []
    for ev in events[123:]:
        engine.process_into(ev, out)
    out += engine.close()

    def strip(rs: list[dict], kinds: tuple[str, ...]) -> list[dict]:
        return [
            {k: v for k, v in r.items() if k != "_events"}
            for r in rs
            if r["kind"] in kinds and r.get("trigger") != "three"
        ]

    assert strip(out, ("window", "feature", "trigger")) == strip(
        ref_out, ("window", "feature", "trigger")
    )
    threes = [r for r in out if r.get("trigger") == "three"]
    assert threes
    assert all(r["first"] >= 123 for r in threes)


def test_changed_pattern_is_replaced_and_removed_trigger_stops() -> None:
    old = parse_tasks(BASE)
    new = parse_tasks(BASE.replace('two_clicks = "click click"', 'two_clicks = "click scroll"'))
    report = diff_configs(old, new)
    assert report.changed == {"triggers": ["two_clicks"]}
    engine = build_engine(old)
    engine, _, _ = switch_engine(engine, old, new)
    out = []
    for ev in [Event(T0, "click", "d"), Event(T0 + 1, "click", "d"), Event(T0 + 2, "scroll", "d")]:
        out += engine.process(ev)
    fired = [(r["first"], r["last"]) for r in out if r["kind"] == "trigger"]
    assert fired == [(1, 2)]


def test_engine_section_change_rebuilds_every_stage() -> None:
    old = parse_tasks(BASE)
    new = parse_tasks(BASE.replace('lateness = "0s"', 'lateness = "5s"'))
    report = diff_configs(old, new)
    assert "all_1m" in report.changed["windows"]
    assert "ipv" in report.changed["features"]
    events = _events(100, 3)
    engine = build_engine(old)
    out: list[dict] = []
    for ev in events[:50]:
        engine.process_into(ev, out)
    engine2, closed, _ = switch_engine(engine, old, new)
    assert closed  # the changed window's open window came out at the switch
    out += closed
    for ev in events[50:]:
        engine2.process_into(ev, out)
    out += engine2.close()
    # closed and restarted, not carried: still every event counted exactly once
    assert _counts(out) == len(events)
    assert engine2.stage("windows") is not engine.stage("windows")


def test_dropping_a_whole_stage_closes_it() -> None:
    old = parse_tasks(BASE)
    new = parse_tasks('[triggers]\ntwo_clicks = "click click"\n')
    engine = build_engine(old)
    evs = [Event(T0, "page_enter", "d", "item_detail", "9"), Event(T0 + 5, "click", "d")]
    for ev in evs:
        engine.process(ev)
    engine2, closed, report = switch_engine(engine, old, new)
    kinds = sorted({(r["kind"], r.get("window") or r.get("feature")) for r in closed})
    assert ("feature", "ipv") in kinds
    assert ("window", "all_1m") in kinds
    assert [s.name for s in engine2.stages] == ["triggers"]
    assert set(report.removed) == {"windows", "features"}
