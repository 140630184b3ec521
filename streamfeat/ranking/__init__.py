"""On-device re-ranking: candidate pages, page state, ordering strategies, re-rank logic.

Everything here is synchronous and free of I/O; time comes from an injected clock. The
asyncio shells (the task runner, the agent) call it off their event loop.
"""

from __future__ import annotations

from streamfeat.ranking._book import Firing, PageBook, RerankTask
from streamfeat.ranking._config import RERANK_KINDS, RerankTaskConfig, parse_rerank_task
from streamfeat.ranking._context import PageViews, build_inputs
from streamfeat.ranking._order import ListValue, beam_search, brute_force, greedy
from streamfeat.ranking._page import Candidate, ExposureStats, FeedState, Page, PageError, Snapshot
from streamfeat.ranking._rerank import (
    EdgeRecPolicy,
    KuaishouPolicy,
    Reranker,
    RerankResult,
    Scorer,
)

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
