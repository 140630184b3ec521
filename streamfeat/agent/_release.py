"""The agent's side of a release: the bundle fetcher's wiring and the health it reports.

A release announcement that comes down is handled by the
:class:`~streamfeat.agent._bundles.BundleFetcher` (pulled over HTTP, verified against the pinned
release key, then applied as a tasks file through the agent's live switch); while a release
runs, the fetcher reports the device's health (:func:`release_health`) to the endpoint, which
pauses or rolls back a rollout that hurts (docs/release.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamfeat.agent._ports import TaskDispatcher
from streamfeat.agent._ranking import RankingShell
from streamfeat.clock import Clock
from streamfeat.io._store import Store
from streamfeat.tunnel import KeyPair

if TYPE_CHECKING:
    from streamfeat.agent._bundles import BundleFetcher

__all__ = ["bundle_fetcher", "release_health"]


def release_health(tasks: TaskDispatcher | None, ranking: RankingShell | None) -> dict[str, Any]:
    """The running tasks file's task runs, errors and timeouts, and the re-rank p99 (ms)."""
    runs = errors = timeouts = 0
    stats: dict[str, dict[str, int]] = getattr(tasks, "stats", {})
    for counts in stats.values():
        runs += counts.get("started", 0)
        errors += counts.get("errors", 0)
        timeouts += counts.get("timeouts", 0)
    p99 = 0.0
    if ranking is not None and ranking.latencies:
        lat = sorted(ranking.latencies)
        p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]
    return {"task_runs": runs, "task_errors": errors, "timeouts": timeouts,
            "rerank_p99_ms": p99}  # fmt: skip


def bundle_fetcher(store: Store, *, endpoint_url: str, device_key: KeyPair, endpoint_key: bytes,
                   release_key: bytes, folder: Path, clock: Clock,
                   apply: Callable[[int, str, str], Awaitable[Any]],
                   current_text: Callable[[], str],
                   health: Callable[[], dict[str, Any]]) -> BundleFetcher:  # fmt: skip
    """The device's bundle fetcher (imports aiohttp: only built with a pinned release key)."""
    from streamfeat.agent._bundles import BundleFetcher, http_base

    return BundleFetcher(
        base_url=http_base(endpoint_url), device_key=device_key, endpoint_key=endpoint_key,
        release_key=release_key, store=store, folder=folder, apply=apply,
        current_text=current_text, clock=clock, health=health,
    )  # fmt: skip
