"""Training samples from stored records: the label join with the device's exposure records, the
device split, the draw, and what is skipped (counted)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from streamfeat.endpoint._records import RecordQuery
from streamfeat.ranking._catalogue import page_of
from streamfeat.ranking._inputs import encode_inputs
from streamfeat.ranking._page import FeedState
from streamfeat.train import auc, log_loss, read_samples, split_by_device
from streamfeat.train._samples import held_out

ITEMS = [str((100 + i % 7) * 100_000 + i) for i in range(8)]
FEED = "home_feed"


class Rows:
    """Stands in for the endpoint's storage (a ``RecordSource``): rows as the reader yields them."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def iter_records(self, query: RecordQuery) -> Iterator[dict[str, Any]]:
        for i, r in enumerate(self.records):
            name = r.get("task") or r.get("feature")
            if query.kind is not None and r["kind"] != query.kind:
                continue
            if query.name is not None and name != query.name:
                continue
            yield {"id": i, "device": r["device"], "kind": r["kind"], "name": name, "record": r}


def _task(device: str, ts: int, order: list[str], task: str = "edgerec") -> dict[str, Any]:
    snap = FeedState(page_of(FEED, "p", ITEMS)).snapshot(50)
    return {"kind": "task", "task": task, "device": device, "ts": ts,
            "values": {"feed": FEED, "order": order, "inputs": encode_inputs(snap, [], order)}}  # fmt: skip


def _exposure(device: str, item: str, start: int, end: int, clicked: bool,
              page: str = FEED) -> dict[str, Any]:  # fmt: skip
    return {"kind": "feature", "feature": "exposure", "device": device, "ts": end,
            "values": {"item": item, "page": page, "visit_start": start, "clicked": clicked}}  # fmt: skip


def test_labels_come_from_clicks_in_the_same_visit_after_the_rerank() -> None:
    order = ITEMS[::-1]
    recs = [
        _task("a", 1_000, order),
        _exposure("a", ITEMS[2], 500, 5_000, True),  # clicked in the visit that holds ts 1000
        _exposure("a", ITEMS[3], 500, 5_000, False),  # exposed, not clicked
        _exposure("a", ITEMS[4], 6_000, 9_000, True),  # clicked, but in a later visit
        _exposure("a", ITEMS[5], 500, 5_000, True, page="other"),  # another feed
        _exposure("b", ITEMS[6], 500, 5_000, True),  # another device
        {"kind": "feature", "feature": "ipv", "device": "a", "ts": 2, "values": {"item": "x"}},
    ]
    samples, stats = read_samples(Rows(recs))
    (s,) = samples
    assert s.device == "a"
    assert [order[i] for i in np.flatnonzero(s.labels)] == [ITEMS[2]]
    assert s.feeds["candidates"].shape == (1, len(ITEMS), 4)
    # row i of the candidates is the item order[i]: its category is the item id's prefix
    assert [int(c) for c in s.feeds["candidates"][0, :, 0]] == [int(i) // 100_000 for i in order]
    assert (stats.task_records, stats.with_inputs, stats.kept, stats.clicked) == (1, 1, 1, 1)


def test_no_click_reranks_are_dropped_unless_kept_and_others_counted() -> None:
    recs = [
        _task("a", 1_000, ITEMS),
        {"kind": "task", "task": "rerank", "device": "a", "ts": 5, "values": {"n": 1}},
        {
            "kind": "task",
            "task": "edgerec",
            "device": "a",
            "ts": 5,
            "values": {"feed": FEED, "order": "x", "inputs": {}},
        },
    ]
    samples, stats = read_samples(Rows(recs))
    assert samples == []
    assert (stats.task_records, stats.with_inputs, stats.no_click, stats.malformed) == (3, 2, 1, 1)
    kept, _ = read_samples(Rows(recs), keep_no_click=True)
    assert len(kept) == 1
    assert not kept[0].labels.any()
    assert read_samples(Rows(recs), task="rerank")[0] == []


def test_max_samples_draws_and_the_split_is_by_device() -> None:
    recs: list[dict[str, Any]] = []
    for d in range(40):
        for k in range(5):
            recs.append(_task(f"dev-{d}", 1_000 + k, ITEMS))
        recs.append(_exposure(f"dev-{d}", ITEMS[0], 0, 10_000, True))
    everything, _ = read_samples(Rows(recs))
    assert len(everything) == 200
    drawn, stats = read_samples(Rows(recs), max_samples=50, seed=3)
    assert len(drawn) == stats.kept == 50
    assert read_samples(Rows(recs), max_samples=50, seed=3)[0][7].device == drawn[7].device
    train, held = split_by_device(everything, 0.25, seed=1)
    assert {s.device for s in train}.isdisjoint({s.device for s in held})
    assert 4 <= len({s.device for s in held}) <= 18
    assert all(held_out(s.device, 0.25, 1) for s in held)


def test_metrics_against_plain_definitions() -> None:
    rng = np.random.default_rng(0)
    scores = [float(x) for x in rng.integers(0, 5, 60) / 4]  # ties on purpose
    labels = [float(x) for x in rng.integers(0, 2, 60)]
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    pairs = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    assert abs(auc(scores, labels) - pairs / (len(pos) * len(neg))) < 1e-12
    assert np.isnan(auc([0.1, 0.2], [1.0, 1.0]))
    ref = -np.mean([y * np.log(max(min(p, 1 - 1e-7), 1e-7)) + (1 - y) * np.log(
        max(min(1 - p, 1 - 1e-7), 1e-7)) for p, y in zip(scores, labels, strict=True)])  # fmt: skip
    assert abs(log_loss(scores, labels) - ref) < 1e-9
