"""On-device re-ranking (issue: on-device re-ranking, "Performance").

* One re-rank of 50 unseen candidates with context sequences of 50 exposures and 20 page
  views (the all-zero begin row added to each), through :class:`streamfeat.ranking.Reranker`
  (build the inputs, run the model, order), with the shipped model
  (``builtin:edgerec-small``): p50 and p99 of wall time over 2,000 re-ranks (``ctx.quick``:
  200), for each runtime present:

  - ``onnxruntime`` (one intra-op thread, as on a phone core), greedy order;
  - the same with the Kuaishou beam search (width 8, first 6 positions);
  - the numpy reference forward pass of the same weights, as a floor to compare with
    (it is not a runtime users run).

  MNN is not offered (docs/ranking.md says why), so it has no row. ``bench/run.py --model
  FILE`` runs these rows with a trained model (``streamfeat train``) instead.
* The model file's size.
* Behaviour delay: an :class:`~streamfeat.agent.Agent` (the default tasks file's ``edgerec``
  task with the shipped model, an offline store in a temporary folder) with a page of 50
  candidates, after 50 exposures and 20 item-page views: the time from ``await
  agent.submit(click)`` to the new order being readable from ``agent.page()`` (awaited with
  ``agent.wait_reranks``), p50 and p99 over 300 clicks (``ctx.quick``: 50), each on a fresh
  page of the feed (the exposure history carries over).

Wall times (``time.perf_counter``), because latency is what a device feels; the machine is
shared, so wall p99 carries other processes' noise: a third row gives the p99 of the calling
thread's CPU time (onnxruntime runs on the calling thread with one intra-op thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from _harness import Context, Row

from streamfeat._event import Event
from streamfeat.clock import SystemClock
from streamfeat.models import edgerec as er
from streamfeat.models import load_model, parse_model_spec
from streamfeat.ranking import FeedState, PageViews, Reranker
from streamfeat.ranking._catalogue import page_of

GROUP = "ranking"


def _page_state() -> tuple[FeedState, PageViews]:
    # 100 items: the first 50 are exposed (the exposure sequence), the other 50 are unseen
    items = [str((100 + i % 40) * 100_000 + i) for i in range(100)]
    s = FeedState(page_of("home_feed", "bench", items))
    for t, item in enumerate(items[:50]):
        s.observe(Event(ts=1000 * t, type="exposure", page="home_feed", item=item,
                        args={"pos": t, "dur_ms": 300 + 10 * t}))  # fmt: skip
        if t % 7 == 0:
            s.observe(Event(ts=1000 * t + 5, type="scroll", page="home_feed", args={"speed": 900}))
    views = PageViews(maxlen=20)
    for t in range(20):
        views.add({"item": items[t], "dwell_ms": 4000 + 100 * t, "add_cart": t % 3, "share": 1})
    return s, views


def _percentiles(fn: Callable[[], Any], n: int) -> tuple[float, float, float]:
    """Return wall p50, wall p99 and the p99 of the calling thread's CPU time, in ms."""
    for _ in range(20):  # warm-up: first runs allocate
        fn()
    ts, cpu = [], []
    for _ in range(n):
        c0, t0 = time.thread_time(), time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1000.0)
        cpu.append((time.thread_time() - c0) * 1000.0)
    return float(np.percentile(ts, 50)), float(np.percentile(ts, 99)), float(np.percentile(cpu, 99))


class _NumpyModel:
    """The numpy reference behind the :class:`Scorer` protocol, for comparison."""

    def __init__(self, model: Any, weights: er.Weights) -> None:
        self.spec = model.spec
        self.version = "numpy-reference"
        self._w = weights

    def run(self, feeds: Mapping[str, Any]) -> Any:
        return er.forward(self._w, feeds["candidates"][0], feeds["exposures"][0],
                          feeds["page_views"][0])  # fmt: skip


def _weights_of(path: Any) -> er.Weights:
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    raw = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    w: er.Weights = {"cat_emb.weight": raw["cat_emb.weight"]}
    for name in ("cand_proj", "head1", "head2"):
        w[f"{name}.weight"] = raw[f"{name}.weight_t"].T.copy()
        w[f"{name}.bias"] = raw[f"{name}.bias"]
    for name in ("q_e", "k_e", "q_d", "k_d"):
        w[f"{name}.weight"] = raw[f"{name}.weight_t"].T.copy()
    for gru in ("gru_e", "gru_d"):
        h = raw[f"{gru}.R"].shape[-1]

        def rzn(a: Any, h: int = h) -> Any:  # ONNX z, r, h back to PyTorch r, z, n
            return np.concatenate([a[h : 2 * h], a[:h], a[2 * h :]], axis=0)

        w[f"{gru}.weight_ih_l0"] = rzn(raw[f"{gru}.W"][0])
        w[f"{gru}.weight_hh_l0"] = rzn(raw[f"{gru}.R"][0])
        w[f"{gru}.bias_ih_l0"] = rzn(raw[f"{gru}.B"][0][: 3 * h])
        w[f"{gru}.bias_hh_l0"] = rzn(raw[f"{gru}.B"][0][3 * h :])
    return w


def run(ctx: Context) -> list[Row]:
    n = 200 if ctx.quick else 2000
    if ctx.model is not None:  # bench/run.py --model FILE: a model from `streamfeat train`
        from streamfeat.train import model_table

        model = load_model(parse_model_spec("edgerec", model_table(ctx.model.resolve())))
    else:
        model = load_model(parse_model_spec("edgerec", {"file": "builtin:edgerec-small"}))
    file_name = model.spec.path.name
    state, views = _page_state()
    snap = state.snapshot(50)
    assert len(snap.unseen) == 50
    assert len(snap.exposure_rows) == 50
    pv = views.last(20)
    clock = SystemClock()
    rows: list[Row] = []
    setups: list[tuple[str, Reranker]] = [
        ("re-rank onnxruntime greedy", Reranker(model, clock=clock)),
        (
            "re-rank onnxruntime beam w8 d6",
            Reranker(model, clock=clock, strategy="beam", width=8, depth=6),
        ),
    ]
    with contextlib.suppress(ImportError):  # the onnx package reads the weights
        setups.append(("re-rank numpy reference greedy",
                       Reranker(_NumpyModel(model, _weights_of(model.spec.path)), clock=clock)))  # fmt: skip
    base = None
    for name, rr in setups:
        p50, p99, cpu99 = _percentiles(lambda rr=rr: rr.rerank(snap, pv, "bench"), n)
        if base is None:
            base = p50
        note = "50 candidates, 50 exposures, 20 page views"
        rows.append(
            Row(GROUP, f"{name} p50", p50, "ms", p50 / base, "onnxruntime greedy p50", note)
        )
        rows.append(Row(GROUP, f"{name} p99", p99, "ms", note=f"goal <= 10 ms; {n} re-ranks"))
        rows.append(Row(GROUP, f"{name} p99 thread CPU", cpu99, "ms",
                        note="CPU time of the calling thread: p99 without other processes' waits"))  # fmt: skip
    rows.append(Row(GROUP, f"model size ({file_name})", model.size_bytes / 1e6, "MB",
                    note="goal <= 3 MB"))  # fmt: skip
    p50, p99, n_ok = asyncio.run(_behaviour_delay(ctx, 50 if ctx.quick else 300))
    note = f"submit(click) -> agent.page() re-ranked; {n_ok} clicks"
    rows.append(Row(GROUP, "behaviour delay p50", p50, "ms", note=note))
    rows.append(
        Row(GROUP, "behaviour delay p99", p99, "ms", note="goal <= 50 ms (EdgeRec: 300 ms)")
    )
    return rows


async def _behaviour_delay(ctx: Context, clicks: int) -> tuple[float, float, int]:
    from streamfeat.agent import Agent
    from streamfeat.data import default_tasks_text

    agent = Agent(tasks=default_tasks_text(), store_path=ctx.tmp / "delay.sqlite", device="d1",
                  tick=0, snapshot_every=0)  # fmt: skip
    await agent.start()
    try:
        items = [str((100 + i % 40) * 100_000 + i) for i in range(50 + clicks * 50)]
        agent.set_page(page_of("home_feed", "warm", items[:50]))
        ts = 1_767_225_600_000
        done = 0
        for i, item in enumerate(items[:50]):  # 50 exposures: fires every 5
            ts += 300
            await agent.submit({"device": "d1", "ts": ts, "type": "exposure", "page": "home_feed",
                                "item": item, "args": {"pos": i, "dur_ms": 250}})  # fmt: skip
        for i in range(20):  # 20 item-page views
            for etype in ("page_enter", "add_cart", "page_exit"):
                ts += 500
                await agent.submit({"device": "d1", "ts": ts, "type": etype,
                                    "page": "item_detail", "item": items[i]})  # fmt: skip
        await agent.drain()
        assert agent.ranking is not None
        done = agent.ranking.counts["done"] + agent.ranking.counts["timeouts"]
        delays = []
        for c in range(clicks):
            page = items[50 + 50 * c : 100 + 50 * c]
            agent.set_page(page_of("home_feed", f"p{c}", page))
            ts += 1000
            ev = {"device": "d1", "ts": ts, "type": "click", "page": "home_feed", "item": page[0]}
            t0 = time.perf_counter()
            await agent.submit(ev)
            ok = await agent.wait_reranks(done + 1, within=5.0)
            t1 = time.perf_counter()
            done += 1
            if ok:
                delays.append((t1 - t0) * 1000.0)
        return float(np.percentile(delays, 50)), float(np.percentile(delays, 99)), len(delays)
    finally:
        await agent.aclose()
