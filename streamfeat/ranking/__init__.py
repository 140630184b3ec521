"""On-device re-ranking: candidate pages, page state, ordering strategies, re-rank logic.

Everything here is synchronous and free of I/O; time comes from an injected clock. The
asyncio shells (the task runner, the agent) call it off their event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamfeat.ranking._config import RERANK_KINDS, RerankTaskConfig, parse_rerank_task
from streamfeat.ranking._order import ListValue, beam_search, brute_force, greedy
from streamfeat.ranking._page import Candidate, ExposureStats, FeedState, Page, PageError, Snapshot

if TYPE_CHECKING:
    from streamfeat.ranking._book import Firing, PageBook, RerankTask
    from streamfeat.ranking._context import PageViews, build_inputs
    from streamfeat.ranking._rerank import (
        EdgeRecPolicy,
        KuaishouPolicy,
        Reranker,
        RerankResult,
        Scorer,
    )

# What needs numpy is imported when first asked for: reading a tasks file (a replay, `tasks
# check`) needs only the re-rank tasks' configuration (see streamfeat/models/_builtin.py).
_LAZY = {
    "Firing": "_book", "PageBook": "_book", "RerankTask": "_book",
    "PageViews": "_context", "build_inputs": "_context",
    "EdgeRecPolicy": "_rerank", "KuaishouPolicy": "_rerank", "Reranker": "_rerank",
    "RerankResult": "_rerank", "Scorer": "_rerank",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "RERANK_KINDS",
    "Candidate",
    "EdgeRecPolicy",
    "ExposureStats",
    "FeedState",
    "Firing",
    "KuaishouPolicy",
    "ListValue",
    "Page",
    "PageBook",
    "PageError",
    "PageViews",
    "RerankResult",
    "RerankTask",
    "RerankTaskConfig",
    "Reranker",
    "Scorer",
    "Snapshot",
    "beam_search",
    "brute_force",
    "build_inputs",
    "greedy",
    "parse_rerank_task",
]
