"""A plain, slow, obviously-right trigger matcher: SPEC section 2 read literally.

For every event ``e`` and every trigger, try every start ``s`` from ``e`` down to ``L + 1`` and
match the slice against the steps by plain backtracking; the first ``s`` that matches (with the clauses and the engine's limits) is the shortest match.
"""

from __future__ import annotations

from functools import cache

from streamfeat._event import Event
from streamfeat.triggers import Pattern, Step


def _matches(step: Step, event: Event) -> bool:
    return any(t.matches(event) for t in step.tokens)


def slice_matches(steps: tuple[Step, ...], events: list[Event]) -> bool:
    """Whether ``events`` read in order match ``steps`` the way a regular expression would:
    ``*`` any events, ``?`` one event, an atom ``count`` events of its tokens (conditions
    included), ``+`` one or more such blocks, an optional step zero or one."""
    n = len(events)

    @cache
    def go(k: int, i: int) -> bool:
        if k == len(steps):
            return i == n
        step = steps[k]
        if step.kind == "star":
            return any(go(k + 1, j) for j in range(i, n + 1))
        if step.kind == "any":
            return i < n and go(k + 1, i + 1)
        reps = range(1, (n - i) // step.count + 1) if step.plus else range(1, 2)
        if step.optional and go(k + 1, i):
            return True
        for r in reps:
            end = i + r * step.count
            if end > n or not all(_matches(step, events[x]) for x in range(i, end)):
                return False  # r blocks fail: more blocks fail too
            if go(k + 1, end):
                return True
        return False

    return go(0, 0)


def reference_firings(
    triggers: dict[str, Pattern],
    events: list[Event],
    *,
    limit_ms: int = 24 * 3_600_000,
    limit_events: int = 10_000,
) -> list[tuple[str, int, int]]:
    """Return ``(trigger, first, last)`` of every firing, in event order then trigger order."""
    last = dict.fromkeys(triggers, -1)
    out = []
    clock = []  # the device's clock (largest ts so far) at each event
    maxts = -1
    for ev in events:
        maxts = max(maxts, ev.ts)
        clock.append(maxts)
    maxts = -1
    for e, ev in enumerate(events):
        maxts = max(maxts, ev.ts)
        for name, pattern in triggers.items():
            for s in range(e, last[name], -1):
                if e - s + 1 > limit_events:
                    break  # a smaller s only makes the slice longer
                if maxts - clock[s] > limit_ms:
                    break  # the device's clock at an earlier start is no later
                if any(t.matches(x) for x in events[s : e + 1] for t in pattern.without):
                    break  # a smaller s still holds the forbidden event
                if pattern.within is not None and ev.ts - events[s].ts > pattern.within:
                    continue
                if slice_matches(pattern.steps, events[s : e + 1]):
                    out.append((name, s, e))
                    last[name] = e
                    break
    return out
