"""The page book: pages per device and feed, firings with copied inputs, apply; the re-rank
task table's validation."""

from __future__ import annotations

import numpy as np
import pytest

from streamfeat.clock import ManualClock
from streamfeat.errors import ConfigError
from streamfeat.models import ModelSpec, load_model
from streamfeat.models import edgerec as er
from streamfeat.ranking import PageBook, RerankTask, parse_rerank_task
from streamfeat.ranking._catalogue import page_of

from .test_page import FEED, ev


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> object:
    w = er.init_weights(np.random.default_rng(5), er.Dims(buckets=64, emb=4, hidden=8))
    path = tmp_path_factory.mktemp("m") / "m.onnx"
    path.write_bytes(er.to_onnx(w))
    return load_model(ModelSpec("m", path, er.input_specs()))


def _event(device: str, ts: int, etype: str, item: str | None = None):  # type: ignore[no-untyped-def]
    return ev(ts, etype, item)._replace(device=device)


def test_book_fires_per_device_and_applies(model: object) -> None:
    cfg = parse_rerank_task("rr", {"kind": "edgerec", "model": "m", "k": 2}, {"m": None})
    book = PageBook([RerankTask.build(cfg, model, ManualClock())])  # type: ignore[arg-type]
    items = [str(11_000_000 + i) for i in range(6)]
    book.set_page("a", page_of(FEED, "p1", items))
    book.set_page("b", page_of(FEED, "p1", items))
    assert book.observe(_event("a", 1, "exposure", items[0])) == []
    assert book.observe(_event("b", 1, "exposure", items[0])) == []
    (f,) = book.observe(_event("a", 2, "exposure", items[1]))
    assert (f.device, f.reason) == ("a", "exposures")
    book.add_page_view("a", {"item": items[0], "dwell_ms": 100})
    res = f.run()
    assert book.apply(f, res)
    assert book.order("a", FEED) == items[:2] + list(res.order)
    assert book.order("b", FEED) == items  # the other device is untouched
    assert book.order("a", "other") is None
    # a firing for a page that was replaced is not applied
    (g,) = book.observe(_event("a", 3, "click", items[0]))
    book.set_page("a", page_of(FEED, "p2", items[3:]))
    assert not book.apply(g, g.run())


def test_rerank_task_table_validation() -> None:
    models = {"m": None}
    cfg = parse_rerank_task("k", {"kind": "kuaishou", "model": "m"}, models)
    assert (cfg.strategy, cfg.depth, cfg.timeout) == ("beam", 6, 200)
    bad = [
        {"kind": "edgerec", "model": "zz"},
        {"kind": "other", "model": "m"},
        {"kind": "edgerec", "model": "m", "k": 0},
        {"kind": "edgerec", "model": "m", "strategy": "best"},
        {"kind": "edgerec", "model": "m", "timeout": "soon"},
        {"kind": "edgerec", "model": "m", "colour": 1},
    ]
    for t in bad:
        with pytest.raises(ConfigError):
            parse_rerank_task("x", t, models, file="t.toml")
