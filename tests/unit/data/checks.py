"""Plain, slow checks of generated logs, shared by the unit and property tests of the generator."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from typing import Any


def by_device(events: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Split a merged log into per-device lists, keeping arrival order."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ev in events:
        out[ev["device"]].append(ev)
    return dict(out)


def visit_problems(events: list[dict[str, Any]]) -> list[str]:
    """Return every bracketing problem of one device's events (empty when well bracketed).

    Rules: ``page_enter``/``page_exit`` of ``item_detail`` (with the same item), ``home_feed``,
    ``shop`` and ``cart`` nest like parentheses; ``app_background`` may cut any open pages;
    every ``app_foreground`` starts with nothing open; pages still open at the end of the log
    are allowed only as the log's cut (nothing after them).
    """
    problems = []
    stack: list[tuple[str, str | None]] = []
    for i, ev in enumerate(events):
        etype, page = ev["type"], ev.get("page")
        if etype == "app_background":
            stack.clear()
        elif etype == "app_foreground":
            if stack:
                problems.append(f"event {i}: app_foreground with open pages {stack}")
            stack.clear()
        elif etype == "page_enter":
            stack.append((page, ev.get("item")))
        elif etype == "page_exit":
            if not stack or stack[-1] != (page, ev.get("item")):
                problems.append(f"event {i}: page_exit {page}/{ev.get('item')} but open: {stack}")
            else:
                stack.pop()
    return problems


def max_detail_depth(events: list[dict[str, Any]]) -> int:
    """Return the deepest nesting of open ``item_detail`` visits in one device's events."""
    depth = best = 0
    for ev in events:
        if ev.get("page") != "item_detail" and ev["type"] != "app_background":
            continue
        if ev["type"] == "page_enter":
            depth += 1
            best = max(best, depth)
        elif ev["type"] == "page_exit":
            depth -= 1
        elif ev["type"] == "app_background":
            depth = 0
    return best


def backward_steps(events: list[dict[str, Any]]) -> list[int]:
    """Return the sizes (ms, positive) of every backward ``ts`` step of one device."""
    return [a["ts"] - b["ts"] for a, b in itertools.pairwise(events) if b["ts"] < a["ts"]]
