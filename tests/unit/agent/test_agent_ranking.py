"""An agent with a page and a model, fed events: the re-rank task records, agent.page(), and
a task that times out or raises leaves the previous order (counted)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamfeat.agent import Agent
from streamfeat.errors import ConfigError
from streamfeat.models import ModelError
from streamfeat.ranking._catalogue import page_of

TASKS = """
[triggers]
click = "click"

[features.ipv]
kind = "ipv"

[models.ranker]
file = "builtin:edgerec-small"

[tasks.rerank]
kind = "edgerec"
model = "ranker"
k = 3
timeout = "{timeout}"

[upload]
records = ["feature", "task"]
"""
ITEMS = [str((100 + i % 7) * 100_000 + i) for i in range(12)]


def _tasks(timeout: str = "2s") -> str:
    return TASKS.replace("{timeout}", timeout)


def _ev(ts: int, etype: str, item: str | None = None, page: str = "home_feed") -> dict[str, Any]:
    out: dict[str, Any] = {"ts": ts, "type": etype, "page": page, "device": "d1"}
    if item is not None:
        out["item"] = item
    if etype == "exposure":
        out["args"] = {"dur_ms": 400, "pos": ITEMS.index(item) if item in ITEMS else 0}
    return out


async def _agent(tmp_path: Path, tasks: str) -> Agent:
    agent = Agent(tasks=tasks, store_path=tmp_path / "d.sqlite", device="d1", tick=0)
    agent.set_page(page_of("home_feed", "p1", ITEMS))
    await agent.start()
    return agent


async def test_edgerec_task_reranks_unseen_and_emits_records(tmp_path: Path) -> None:
    agent = await _agent(tmp_path, _tasks())
    try:
        assert agent.page() == ITEMS
        for t in range(3):  # k = 3 exposures without a click
            await agent.submit(_ev(1000 + t, "exposure", ITEMS[t]))
        assert await agent.wait_reranks(1, within=10)
        order = agent.page()
        assert order is not None
        assert order[:3] == ITEMS[:3]  # the seen do not move
        assert sorted(order[3:]) == sorted(ITEMS[3:])
        await agent.submit(_ev(2000, "delete", ITEMS[7]))
        assert await agent.wait_reranks(2, within=10)
        assert ITEMS[7] not in (agent.page() or [])
        await agent.drain()
        recs = list(agent.store.records(kind="task"))
        assert [r["task"] for r in recs] == ["rerank", "rerank"]
        first, second = (r["values"] for r in recs)
        assert first["reason"] == "exposures"
        assert second["reason"] == "delete"
        assert sorted(first["order"]) == sorted(ITEMS[3:])
        assert len(first["scores"]) == len(first["order"])
        assert first["model_version"].startswith("ranker@")
        assert first["latency_ms"] >= 0
        assert second["order"] == (agent.page() or [])[3:]
        assert agent.ranking is not None
        assert agent.ranking.counts["applied"] == 2
    finally:
        await agent.aclose()


class _Stub:
    """Stands in for the model: raises, or blocks until released."""

    def __init__(self, inner: Any, mode: str) -> None:
        self.spec, self.version, self.inner, self.mode = inner.spec, inner.version, inner, mode
        self.release = threading.Event()

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.mode == "raise":
            msg = "model exploded"
            raise RuntimeError(msg)
        self.release.wait(5)
        return self.inner.run(feeds)  # type: ignore[no-any-return]


@pytest.mark.parametrize("mode", ["raise", "hang"])
async def test_failed_rerank_keeps_previous_order_and_is_counted(tmp_path: Path, mode: str) -> None:
    agent = await _agent(tmp_path, _tasks("100ms"))
    try:
        assert agent.ranking is not None
        rr = agent.ranking.book.tasks[0].reranker
        stub = _Stub(rr.model, mode)
        rr.model = stub
        await agent.submit(_ev(1000, "click", ITEMS[0]))
        assert await agent.wait_reranks(1, within=10)
        assert agent.page() == ITEMS  # unchanged
        counts = agent.ranking.counts
        assert counts["applied"] == 0
        assert counts["errors" if mode == "raise" else "timeouts"] == 1
        stub.release.set()
        await agent.drain()
        assert list(agent.store.records(kind="task")) == []
        assert agent.page() == ITEMS  # a late result is dropped
    finally:
        await agent.aclose()


async def test_model_refused_when_the_tasks_file_loads(tmp_path: Path) -> None:
    bad = _tasks().replace('file = "builtin:edgerec-small"', 'file = "missing.onnx"\n'
                           '[models.ranker.inputs.candidates]\nsource = "candidates"\n'
                           'fields = ["server_score"]\nshape = [1, "C", 1]')  # fmt: skip
    with pytest.raises(ModelError) as info:
        Agent(tasks=bad, store_path=tmp_path / "d.sqlite")
    assert info.value.model == "ranker"
    with pytest.raises(ConfigError):
        Agent(tasks=_tasks().replace('model = "ranker"', 'model = "other"'),
              store_path=tmp_path / "d.sqlite")  # fmt: skip


async def test_kuaishou_task_fills_the_next_position(tmp_path: Path) -> None:
    text = _tasks().replace('kind = "edgerec"', 'kind = "kuaishou"').replace("k = 3\n", "")
    agent = await _agent(tmp_path, text)
    try:
        for t in range(2):  # each item finished fires one re-rank
            await agent.submit(_ev(1000 + t, "exposure", ITEMS[t]))
            assert await agent.wait_reranks(t + 1, within=10)
        order = agent.page() or []
        assert order[:2] == ITEMS[:2]
        assert sorted(order[2:]) == sorted(ITEMS[2:])
        await agent.drain()
        recs = list(agent.store.records(kind="task"))
        assert [r["values"]["reason"] for r in recs] == ["finished", "finished"]
        assert recs[-1]["values"]["order"][0] == order[2]  # the best unseen is next
    finally:
        await agent.aclose()


async def test_page_views_reach_the_model(tmp_path: Path) -> None:
    agent = await _agent(tmp_path, _tasks())
    try:
        for etype in ("page_enter", "add_cart", "page_exit"):
            await agent.submit(_ev(500, etype, ITEMS[5], page="item_detail"))
        await agent.drain()
        assert agent.ranking is not None
        views = agent.ranking.book.views["d1"].last(20)
        assert [(v["category"], v["add_cart"]) for v in views] == [(105.0, 1.0)]
    finally:
        await agent.aclose()


def test_default_tasks_file_runs_the_edgerec_task() -> None:
    from streamfeat.data import default_tasks_text
    from streamfeat.tasks import parse_tasks

    cfg = parse_tasks(default_tasks_text())
    (task,) = (t for t in cfg.reranks.values() if t.kind == "edgerec")
    assert cfg.loaded_models[task.model].size_bytes < 3 * 1024 * 1024


async def test_pushed_file_with_a_bad_model_is_refused_and_ranking_goes_on(tmp_path: Path) -> None:
    agent = await _agent(tmp_path, _tasks())
    try:
        bad = _tasks().replace('file = "builtin:edgerec-small"', 'file = "builtin:nope"')
        assert await agent.apply_config(1, bad, source="downlink") is None
        assert agent.version == 0
        history = agent.config_history()
        assert history[-1]["status"].startswith("refused")
        assert "ranker" in history[-1]["status"]
        # the running file's task still re-ranks
        await agent.submit(_ev(1000, "click", ITEMS[0]))
        assert await agent.wait_reranks(1, within=10)
        assert agent.ranking is not None
        assert agent.ranking.counts["applied"] == 1
        # a good push with a changed task (k) is applied and used
        report = await agent.apply_config(2, _tasks().replace("k = 3", "k = 2"), source="downlink")
        assert report is not None
        assert agent.ranking.book.tasks[0].config.k == 2
    finally:
        await agent.aclose()


async def test_shadow_task_records_inputs_and_keeps_the_order(tmp_path: Path) -> None:
    from streamfeat.ranking._inputs import decode_inputs

    tasks = _tasks().replace("k = 3\n", "k = 3\napply = false\n")
    agent = await _agent(tmp_path, tasks)
    try:
        for t in range(3):
            await agent.submit(_ev(1000 + t, "exposure", ITEMS[t]))
        assert await agent.wait_reranks(1, within=10)
        await agent.drain()
        assert agent.page() == ITEMS  # a shadow re-rank changes nothing shown
        assert agent.ranking is not None
        assert (agent.ranking.counts["shadow"], agent.ranking.counts["applied"]) == (1, 0)
        (rec,) = agent.store.records(kind="task")
        v = rec["values"]
        assert v["applied"] is False
        feeds = decode_inputs(v["inputs"])
        assert feeds["candidates"].shape == (1, len(ITEMS) - 3, 4)
        assert feeds["exposures"].shape == (1, 4, 11)  # begin row + the 3 exposed
    finally:
        await agent.aclose()


async def test_record_inputs_false_leaves_them_out(tmp_path: Path) -> None:
    agent = await _agent(tmp_path, _tasks().replace("k = 3\n", "k = 3\nrecord_inputs = false\n"))
    try:
        for t in range(3):
            await agent.submit(_ev(1000 + t, "exposure", ITEMS[t]))
        assert await agent.wait_reranks(1, within=10)
        await agent.drain()
        (rec,) = agent.store.records(kind="task")
        assert "inputs" not in rec["values"]
        assert "applied" not in rec["values"]
    finally:
        await agent.aclose()
