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

__all__ = ["CATEGORY_WINDOWS", "rerank_no_click", "visit_summary"]

_ENGAGED = ("click", "add_cart", "favorite", "purchase")


def rerank_no_click(ctx: TaskContext) -> None:
    """Demote items exposed without a click; boost categories the user engaged with.

    Emits ``{"action": "rerank", "demote": [...], "boost_categories": [...], "exposures": n}``:
    ``demote`` lists the exposed items, most exposed first (ties by first exposure), and
    ``boost_categories`` up to three categories (as strings: a category may be an integer, a
    string or any scalar in the log), most engaged first, counted from

    * the device's open windows named in :data:`CATEGORY_WINDOWS` (windows keyed by
      ``args.category``; the default tasks file's ``category_views`` counts item-detail views
      per category over 30 minutes): each open window adds its ``n`` (or 1) to its key;
    * feature records that carry a ``category`` value with an engaged action;
    * engaged events (``click``, ``add_cart``, ``favorite``, ``purchase``) of the matched slice
      with an ``args.category``.
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


#: Windows (of the tasks file) keyed by ``args.category`` that :func:`rerank_no_click` reads.
CATEGORY_WINDOWS = ("category_views",)


def _category(value: Any) -> str | None:
    # a category is whatever scalar the log carries (Taobao and the generator: integers)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return str(value)


def _engaged_categories(ctx: TaskContext) -> list[str]:
    counts: Counter[str] = Counter()
    windows = ctx.windows()
    for name in CATEGORY_WINDOWS:
        for row in windows.get(name, {}).get("open", ()):
            cat = _category(row.get("key"))
            n = row.get("values", {}).get("n", 1)
            if cat is not None:
                counts[cat] += n if isinstance(n, int) and n > 0 else 1
    for rec in _records(ctx.features()):
        values = rec.get("values", rec) if isinstance(rec, dict) else {}
        cat = _category(values.get("category")) if isinstance(values, dict) else None
        if cat is not None and any(values.get(a) for a in _ENGAGED if a != "click"):
            counts[cat] += 1
    for ev in ctx.events:
        cat = _category(ev.args.get("category"))
        if ev.type in _ENGAGED and cat is not None:
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
