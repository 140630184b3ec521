"""The report collector against plain recomputations over the same records."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from streamfeat.report import ReportCollector, Reservoir, reason_group

T0 = 1_767_225_600_000


def _records(rng: random.Random, n: int) -> list[dict]:
    out: list[dict] = []
    for i in range(n):
        k = rng.choice(["feature", "window", "trigger", "late", "quarantine"])
        ts = T0 + rng.randrange(3_600_000)
        if k == "feature":
            out.append({"kind": "feature", "feature": "ipv", "device": "d", "ts": ts,
                        "values": {"item": "1", "enter_ts": ts - 5, "dwell_ms": 5, "truncated": False,
                                   "add_cart": rng.randrange(3), "scroll": rng.randrange(4)}})  # fmt: skip
        elif k == "window":
            out.append({"kind": "window", "window": rng.choice("ab"), "device": "d", "key": "d",
                        "start": ts - 600_000, "end": ts, "values": {"n": rng.randrange(9), "first": ts - 1000},
                        "final": rng.random() < 0.3})  # fmt: skip
        elif k == "trigger":
            out.append({"kind": "trigger", "trigger": rng.choice("xyz"), "device": "d", "first": 0,
                        "last": 1, "first_ts": ts - 1, "last_ts": ts})  # fmt: skip
        elif k == "late":
            out.append({"kind": "late", "window": "a", "device": "d", "ts": ts})
        else:
            out.append(
                {
                    "kind": "quarantine",
                    "line": i,
                    "reason": f'line {i}: `ts` must be an integer, got "{i}"',
                }
            )
    return out


def test_counts_match_a_plain_recount() -> None:
    recs = _records(random.Random(4), 2000)
    c = ReportCollector(examples=3)
    c.records(recs)
    assert c.records_by_kind == Counter(r["kind"] for r in recs)
    assert c.triggers == Counter(r["trigger"] for r in recs if r["kind"] == "trigger")
    assert c.late == Counter(r["window"] for r in recs if r["kind"] == "late")
    assert sum(c.quarantine.values()) == sum(r["kind"] == "quarantine" for r in recs)
    assert list(c.quarantine) == ["`ts` must be an integer, got …"]
    assert all(len(v) <= 3 for v in c.quarantine_examples.values())
    windows = [r for r in recs if r["kind"] == "window"]
    for name in "ab":
        mine = [r for r in windows if r["window"] == name]
        assert c.windows[name].records == len(mine)
        assert c.windows[name].final == sum(r["final"] for r in mine)
        assert sorted(c.windows[name].aggregates["n"].values) == sorted(
            r["values"]["n"] for r in mine
        )
        # a timestamp aggregate is shown as its place in the window
        assert set(c.windows[name].aggregates["first - start (s)"].values) == {599.0}
    ipv = [r for r in recs if r["kind"] == "feature"]
    assert sorted(c.features["ipv"]["actions per visit"].values) == sorted(
        r["values"]["add_cart"] + r["values"]["scroll"] for r in ipv
    )
    by_minute = Counter(r["end"] // 60_000 for r in windows)
    assert c.kind_by_minute["window"] == by_minute


def test_quarantine_reasons_group_without_line_numbers_and_values() -> None:
    assert reason_group('line 17: `ts` must be an integer, got "abc"') == reason_group(
        'line 9: `ts` must be an integer, got "x"'
    )
    assert reason_group("message 3: not a map") == "not a map"


@given(st.lists(st.integers(), max_size=300), st.integers(1, 50))
def test_reservoir_keeps_a_sample_of_what_it_saw(xs: list[int], size: int) -> None:
    r = Reservoir(size, random.Random(0))
    for x in xs:
        r.add(x)
    assert r.seen == len(xs)
    assert len(r.values) == min(size, len(xs))
    assert not (Counter(r.values) - Counter(xs))  # a sub-multiset of the input


def test_reservoir_is_roughly_uniform() -> None:
    hits = Counter()
    for seed in range(400):
        r = Reservoir(10, random.Random(seed))
        for x in range(100):
            r.add(x)
        hits.update(v // 10 for v in r.values)
    # each tenth of the input holds a tenth of the sample (4000 draws; 3 sigma is about 57)
    assert all(abs(n - 400) < 80 for n in hits.values()), hits


def test_progress_ignores_time_going_back() -> None:
    c = ReportCollector()
    c.progress(1.0, 10)
    c.progress(0.5, 20)
    c.progress(2.0, 30)
    assert c.progress_samples == [(1.0, 10), (2.0, 30)]
