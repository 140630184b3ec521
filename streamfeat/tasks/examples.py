"""Example tasks, used by the demo tasks file (pure Python, no model download).

* :func:`rerank_no_click`: an EdgeRec-like on-device re-rank fired by "k exposures without a
  click": the items just shown k times without a click are demoted, and the categories the
  user engaged with recently (from the device's features, when a reader is wired) are boosted.
* :func:`visit_summary`: an ``async`` task that turns an item-detail visit (``ipv_done``) into
  one record with its dwell time and the actions seen during the visit.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from streamfeat.tasks._context import TaskContext

__all__ = ["rerank_no_click", "visit_summary"]

_ENGAGED = ("click", "add_cart", "favorite", "purchase")


def rerank_no_click(ctx: TaskContext) -> None:
    """Demote items exposed without a click; boost categories the user engaged with.

    Emits ``{"action": "rerank", "demote": [...], "boost_categories": [...], "exposures": n}``:
    ``demote`` lists the exposed items, most exposed first (ties by first exposure), and
    ``boost_categories`` up to three categories, most engaged first, from the device's
    feature view (``args.category`` of engaged events in the matched slice otherwise).
    """
    shown: Counter[str] = Counter()
    for ev in ctx.events:
        if ev.type == "exposure" and ev.item is not None:
            shown[ev.item] += 1
    demote = [item for item, _ in sorted(shown.items(), key=lambda kv: -kv[1])]
    boost = _engaged_categories(ctx)
    ctx.emit({
        "action": "rerank",
        "demote": demote,
        "boost_categories": boost[:3],
        "exposures": sum(shown.values()),
    })  # fmt: skip


def _engaged_categories(ctx: TaskContext) -> list[str]:
    counts: Counter[str] = Counter()
    feats = ctx.features()
    for rec in _records(feats):
        values = rec.get("values", rec) if isinstance(rec, dict) else {}
        cat = values.get("category") if isinstance(values, dict) else None
        if isinstance(cat, str) and any(values.get(a) for a in _ENGAGED if a != "click"):
            counts[cat] += 1
    for ev in ctx.events:
        cat = ev.args.get("category")
        if ev.type in _ENGAGED and isinstance(cat, str):
            counts[cat] += 1
    return [c for c, _ in counts.most_common()]


def _records(view: Any) -> list[Any]:
    """Flatten a feature view (``{name: record or [records]}``) into a list of records."""
    if not isinstance(view, dict):
        return []
    out: list[Any] = []
    for v in view.values():
        out.extend(v if isinstance(v, list) else [v])
    return out


async def visit_summary(ctx: TaskContext) -> None:
    """Summarise an item-detail visit: item, dwell and the count of each event type in it.

    Emits ``{"item": ..., "dwell_ms": last_ts - first_ts, "events": n, "types": {type: n}}``.
    """
    first, last = ctx.events[0], ctx.events[-1]
    types = Counter(ev.type for ev in ctx.events[1:-1])
    ctx.emit({
        "item": first.item,
        "dwell_ms": last.ts - first.ts,
        "events": len(ctx.events),
        "types": dict(sorted(types.items())),
    })  # fmt: skip
