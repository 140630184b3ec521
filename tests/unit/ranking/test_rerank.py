"""Re-rank logic with a real model: policies, results, latency on the injected clock."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from streamfeat.clock import ManualClock
from streamfeat.models import ModelSpec, load_model
from streamfeat.models import edgerec as er
from streamfeat.ranking import EdgeRecPolicy, FeedState, KuaishouPolicy, PageViews, Reranker
from streamfeat.ranking._catalogue import page_of

from .test_page import FEED, ev


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    w = er.init_weights(np.random.default_rng(5), er.Dims(buckets=64, emb=4, hidden=8))
    path = tmp_path_factory.mktemp("m") / "m.onnx"
    path.write_bytes(er.to_onnx(w))
    return path


class SlowModel:
    """A stand-in scorer that advances the manual clock, to check latency is measured there."""

    def __init__(self, inner: object, clock: ManualClock) -> None:
        self.inner = inner
        self.clock = clock
        self.spec: ModelSpec = inner.spec  # type: ignore[attr-defined]
        self.version = "slow-1"

    def run(self, feeds: Mapping[str, npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
        self.clock.advance(0.004)
        return self.inner.run(feeds)  # type: ignore[attr-defined, no-any-return]


def _state() -> FeedState:
    return FeedState(page_of(FEED, "p1", [str(10_000_000 * (1 + i % 3) + i) for i in range(12)]))


def test_edgerec_policy_fires_on_click_delete_and_k_exposures() -> None:
    s, p = _state(), EdgeRecPolicy(k=3)
    items = s.order[:]
    fired = [p.should_fire(s, s.observe(ev(t, "exposure", items[t]))) for t in range(5)]
    assert fired == [None, None, "exposures", None, None]
    assert p.should_fire(s, s.observe(ev(9, "click", items[4]))) == "click"
    fired = [p.should_fire(s, s.observe(ev(10 + t, "exposure", items[5 + t]))) for t in range(3)]
    assert fired == [None, None, "exposures"]
    assert p.should_fire(s, s.observe(ev(20, "delete", items[9]))) == "delete"
    assert p.should_fire(s, s.observe(ev(21, "scroll", speed=3))) is None


def test_kuaishou_policy_fires_on_every_finished_item() -> None:
    s, p = _state(), KuaishouPolicy()
    items = s.order[:]
    assert [p.should_fire(s, s.observe(ev(t, "exposure", items[t]))) for t in range(3)] == [
        "finished"] * 3  # fmt: skip
    assert p.should_fire(s, s.observe(ev(5, "click", items[0]))) is None


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_rerank_orders_unseen_by_model(model_path: Path, strategy: str) -> None:
    clock = ManualClock()
    model = load_model(ModelSpec("m", model_path, er.input_specs()))
    rr = Reranker(SlowModel(model, clock), clock=clock, strategy=strategy, width=4, depth=3)
    s = _state()
    items = s.order[:]
    for t in range(4):
        s.observe(ev(t, "exposure", items[t], dur_ms=300))
    views = PageViews()
    views.add({"item": items[0], "dwell_ms": 5000, "add_cart": 1})
    snap = s.snapshot(50)
    before = s.order[:]
    res = rr.rerank(snap, views.last(20), "exposures")
    assert s.order == before  # rerank never mutates the state
    assert sorted(res.order) == sorted(s.unseen())
    assert res.model_version == "slow-1"
    assert res.latency_ms == pytest.approx(4.0)
    if strategy == "greedy":
        assert [res.scores[i] for i in res.order] == sorted(res.scores.values(), reverse=True)
    assert s.apply(res.page_id, res.order)
    assert s.order[:4] == items[:4]
    assert s.order[4:] == list(res.order)
    vals = res.values()
    assert vals["order"] == list(res.order)
    assert len(vals["scores"]) == len(res.order)


def test_rerank_uses_the_context(model_path: Path) -> None:
    # the same unseen candidates score differently with a different exposure history
    model = load_model(ModelSpec("m", model_path, er.input_specs()))
    rr = Reranker(model, clock=ManualClock())
    a, b = _state(), _state()
    items = a.order[:]
    a.observe(ev(1, "exposure", items[0], dur_ms=100))
    b.observe(ev(1, "exposure", items[0], dur_ms=90_000))
    b.observe(ev(2, "click", items[0]))
    ra, rb = rr.rerank(a.snapshot(50), [], "x"), rr.rerank(b.snapshot(50), [], "x")
    assert ra.scores != rb.scores


def test_rerank_with_nothing_unseen(model_path: Path) -> None:
    model = load_model(ModelSpec("m", model_path, er.input_specs()))
    s = FeedState(page_of(FEED, "p1", ["1"]))
    s.observe(ev(1, "exposure", "1"))
    res = Reranker(model, clock=ManualClock()).rerank(s.snapshot(50), [], "x")
    assert res.order == ()


def test_reranker_refuses_bad_strategy(model_path: Path) -> None:
    model = load_model(ModelSpec("m", model_path, er.input_specs()))
    with pytest.raises(ValueError, match="strategy"):
        Reranker(model, clock=ManualClock(), strategy="random")
    with pytest.raises(ValueError, match="width"):
        Reranker(model, clock=ManualClock(), strategy="beam", width=0)
