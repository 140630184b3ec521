"""ipv and exposure on generated logs, against slow references written from SPEC section 4.

The ipv reference assigns every event an owning visit by explicit index lists; the exposure
reference cuts a device's events into feed visits and recomputes every item's figures from the
visit's slice of events. Both produce whole records; the stage must match them exactly.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from streamfeat._event import Event, event_from_obj
from streamfeat.features import FeatureStage
from streamfeat.gen._generator import generate_events
from streamfeat.tasks import DEFAULT_IPV_ACTIONS, parse_tasks

CONFIG = parse_tasks('[features.ipv]\nkind = "ipv"\n[features.exposure]\nkind = "exposure"\n')
FEED = "home_feed"


def is_action(e: Event, action: str) -> bool:
    return (
        e.type == action
        or (e.type == "click" and e.args.get("control") == action)
        or (action == "shop" and e.type == "page_enter" and e.page == "shop")
    )


def ref_ipv(events: list[Event]) -> tuple[list[dict[str, Any]], list[list[int]]]:
    """The ipv records of one device's events, and each record's member event indexes."""
    records: list[dict[str, Any]] = []
    members_of: list[list[int]] = []
    stack: list[dict[str, Any]] = []

    def close(v: dict[str, Any], ts: int, truncated: bool) -> None:
        evs = [events[i] for i in v["members"]]
        values = {"item": v["item"], "enter_ts": v["enter_ts"], "dwell_ms": ts - v["enter_ts"],
                  "truncated": truncated}  # fmt: skip
        values.update({a: sum(1 for e in evs if is_action(e, a)) for a in DEFAULT_IPV_ACTIONS})
        records.append({"kind": "feature", "feature": "ipv", "device": events[0].device,
                        "ts": ts, "values": values})  # fmt: skip
        members_of.append(v["members"])

    for j, e in enumerate(events):
        detail = e.page == "item_detail" and e.item is not None
        if e.type == "page_enter" and detail:
            stack.append({"item": e.item, "enter_ts": e.ts, "members": [j]})
        elif e.type == "page_exit" and detail:
            mine = [k for k, v in enumerate(stack) if v["item"] == e.item]
            if mine:
                k = mine[-1]
                stack[k]["members"].append(j)
                for inner in reversed(stack[k + 1 :]):
                    close(inner, e.ts, True)
                close(stack[k], e.ts, False)
                del stack[k:]
        elif stack:
            stack[-1]["members"].append(j)
            if e.type == "app_background":
                for v in reversed(stack):
                    close(v, e.ts, True)
                stack.clear()
    for v in reversed(stack):
        close(v, events[-1].ts, True)
    return records, members_of


def feed_visits(events: list[Event]) -> list[tuple[str, int, list[int], int]]:
    """Cut a device's events into feed visits: (page, start ts, member indexes, closing ts)."""
    visits = []
    cur: tuple[str, int, list[int]] | None = None
    for j, e in enumerate(events):
        opens = e.type == "page_enter" and e.page == FEED
        implicit = e.type == "exposure" and e.item is not None and e.page == FEED and cur is None
        ends = cur is not None and (
            e.type == "app_background" or (e.type == "page_exit" and e.page == FEED)
        )
        if (opens or ends) and cur is not None:
            visits.append((*cur, e.ts))
            cur = None
        if opens or implicit:
            cur = (FEED, e.ts, [])
        if cur is not None and not opens and e.page in (None, FEED):
            cur[2].append(j)
    if cur is not None:
        visits.append((*cur, events[-1].ts))
    return visits


def ref_exposure(events: list[Event]) -> list[dict[str, Any]]:
    out = []
    for page, start, members, close_ts in feed_visits(events):
        evs = [events[i] for i in members]
        exposed: list[str] = []
        for e in evs:
            if e.type == "exposure" and e.item is not None and e.item not in exposed:
                exposed.append(e.item)
        for item in exposed:
            exps = [e for e in evs if e.type == "exposure" and e.item == item]
            durs = [
                e.args.get("dur_ms") if isinstance(e.args.get("dur_ms"), int) else 0 for e in exps
            ]
            spans = [(e.ts, e.ts + d) for e, d in zip(exps, durs, strict=True)]
            scrolls = [
                e for e in evs if e.type == "scroll" and any(a <= e.ts <= b for a, b in spans)
            ]
            speeds = [
                e.args["speed"] for e in scrolls if isinstance(e.args.get("speed"), int | float)
            ]
            deletes = [e for e in evs if e.type == "delete" and e.item == item]
            reasons = [e.args["reason"] for e in deletes if "reason" in e.args]
            pos = [e.args["pos"] for e in exps if "pos" in e.args]
            values = {
                "item": item, "page": page, "visit_start": start,
                "first_pos": pos[0] if pos else None, "exposures": len(exps),
                "exposure_ms": sum(durs), "scrolls": len(scrolls),
                "max_scroll_speed": max(speeds) if speeds else None,
                "clicked": any(e.type == "click" and e.item == item for e in evs),
                "deleted": bool(deletes), "delete_reason": reasons[0] if reasons else None,
            }  # fmt: skip
            out.append({"kind": "feature", "feature": "exposure", "device": events[0].device,
                        "ts": close_ts, "values": values})  # fmt: skip
    return out


def by_device(seed: int, minutes: int, devices: int = 3) -> dict[str, list[Event]]:
    per: dict[str, list[Event]] = defaultdict(list)
    for obj in generate_events(devices, minutes, seed, disorder=0.02):
        e = event_from_obj(obj)
        per[e.device].append(e)
    return per


def run(events: list[Event], stage: FeatureStage) -> list[dict[str, Any]]:
    state = stage.new_state(events[0].device)
    out: list[dict[str, Any]] = []
    for i, e in enumerate(events):
        stage.process(state, i, e, out)
    stage.close(state, out)
    assert stage.idle(state)
    return out


@settings(max_examples=40)
@given(st.integers(0, 2**32), st.integers(3, 25))
def test_ipv_matches_the_reference_on_generated_logs(seed: int, minutes: int) -> None:
    stage = FeatureStage(CONFIG)
    for events in by_device(seed, minutes).values():
        got = [r for r in run(events, stage) if r["feature"] == "ipv"]
        want, members = ref_ipv(events)
        assert got == want
        for rec, mem in zip(got, members, strict=True):
            v = rec["values"]
            assert v["dwell_ms"] == rec["ts"] - v["enter_ts"]
            counted = sum(
                sum(1 for a in DEFAULT_IPV_ACTIONS if is_action(events[i], a)) for i in mem
            )
            assert sum(v[a] for a in DEFAULT_IPV_ACTIONS) == counted
        # no event counts for two visits
        flat = [i for m in members for i in m]
        assert len(flat) == len(set(flat))


@settings(max_examples=40)
@given(st.integers(0, 2**32), st.integers(3, 25))
def test_exposure_matches_the_reference_on_generated_logs(seed: int, minutes: int) -> None:
    stage = FeatureStage(CONFIG)
    for events in by_device(seed, minutes).values():
        got = [r for r in run(events, stage) if r["feature"] == "exposure"]
        assert got == ref_exposure(events)
        n_exposures = sum(1 for e in events if e.type == "exposure" and e.page == FEED and e.item)
        assert sum(r["values"]["exposures"] for r in got) == n_exposures


@settings(max_examples=15)
@given(st.integers(0, 2**32), st.data())
def test_feature_state_survives_a_snapshot_at_any_event(seed: int, data: st.DataObject) -> None:
    stage = FeatureStage(CONFIG, sizes=True)
    for events in by_device(seed, 8, devices=2).values():
        whole = run(events, stage)
        cut = data.draw(st.integers(0, len(events)))
        state = stage.new_state(events[0].device)
        out: list[dict[str, Any]] = []
        for i, e in enumerate(events[:cut]):
            stage.process(state, i, e, out)
        blob = msgpack.packb(stage.dump(state), use_bin_type=True)
        other = FeatureStage(CONFIG, sizes=True)
        state = other.load(msgpack.unpackb(blob, raw=False, strict_map_key=False))
        assert other.dump(state) == stage.dump(stage.load(other.dump(state)))
        for i, e in enumerate(events[cut:], cut):
            other.process(state, i, e, out)
        other.close(state, out)
        assert out == whole
