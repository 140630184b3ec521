"""Ordering strategies: greedy by score, and a beam search over orderings (after Kuaishou).

A list is scored item by item given the items before it (:class:`ListValue`): the gain of the
item at position ``i`` is its score less ``penalty`` for every one of the ``window`` items just
before it that has the same category, discounted by ``discount ** i``; the list's value is the
sum of the gains. With a penalty, items interact, so sorting by score is no longer best: the
beam search extends the ``width`` best prefixes by every remaining item, position by
position, and keeps the ``width`` best (ties: the earlier prefix, then the lower index), then
returns the better of its best list and the greedy order (so it never scores below greedy).
:func:`brute_force` tries every ordering; the tests check the beam against it.

>>> greedy([0.1, 0.9, 0.5])
[1, 2, 0]
>>> v = ListValue(penalty=1.0, window=1, discount=0.9)
>>> beam_search([0.9, 0.8, 0.7], [1, 1, 2], v, width=4)
[0, 2, 1]
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import permutations

__all__ = ["ListValue", "beam_search", "brute_force", "greedy"]


def greedy(scores: Sequence[float]) -> list[int]:
    """Return candidate indexes by descending score (ties: the earlier candidate first)."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


@dataclass(frozen=True, slots=True)
class ListValue:
    """How an ordered list is valued, item by item given the items before it.

    Attributes:
        penalty: subtracted per same-category item among the ``window`` items before.
        window: how many previous items a repeat is looked for in.
        discount: weight of position ``i`` is ``discount ** i`` (position bias).
    """

    penalty: float = 0.1
    window: int = 1
    discount: float = 0.9

    def gain(
        self, scores: Sequence[float], cats: Sequence[float], prefix: Sequence[int], i: int
    ) -> float:
        """Return the discounted gain of putting ``i`` right after ``prefix``."""
        recent = prefix[-self.window :] if self.window > 0 else ()
        repeats = sum(1 for j in recent if cats[j] == cats[i])
        return (self.discount ** len(prefix)) * (scores[i] - self.penalty * repeats)

    def value(self, scores: Sequence[float], cats: Sequence[float], order: Sequence[int]) -> float:
        """Return the value of the whole list ``order``."""
        total = 0.0
        for n, i in enumerate(order):
            total += self.gain(scores, cats, order[:n], i)
        return total


def beam_search(
    scores: Sequence[float],
    cats: Sequence[float],
    value: ListValue,
    *,
    width: int = 8,
    depth: int | None = None,
) -> list[int]:
    """Return an ordering of all candidates found by beam search of the given width.

    Args:
        depth: search only the first ``depth`` positions (the rest follow in greedy order);
            None searches them all. A device that fills one position at a time needs a few.

    Raises:
        ValueError: if ``width < 1`` or ``scores`` and ``cats`` differ in length.
    """
    if width < 1:
        msg = f"beam width must be >= 1, got {width}"
        raise ValueError(msg)
    n = len(scores)
    if len(cats) != n:
        msg = f"{n} scores but {len(cats)} categories"
        raise ValueError(msg)
    beams: list[tuple[float, tuple[int, ...]]] = [(0.0, ())]
    pen, win = value.penalty, value.window
    g = greedy(scores)
    for step in range(n if depth is None else min(depth, n)):
        w = value.discount**step
        ext: list[tuple[float, int, int, tuple[int, ...]]] = []
        for b, (v, prefix) in enumerate(beams):
            used = set(prefix)
            recent = [cats[j] for j in prefix[-win:]] if win > 0 else []
            for i in range(n):
                if i not in used:  # the same sum as ListValue.gain, inlined (hot loop)
                    ext.append((v + w * (scores[i] - pen * recent.count(cats[i])), b, i, prefix))
        best = heapq.nsmallest(width, ext, key=lambda e: (-e[0], e[1], e[2]))
        beams = [(v, (*prefix, i)) for v, _b, i, prefix in best]
    head = beams[0][1]
    placed = set(head)
    top = [*head, *(i for i in g if i not in placed)]
    return top if value.value(scores, cats, top) >= value.value(scores, cats, g) else g


def brute_force(scores: Sequence[float], cats: Sequence[float], value: ListValue) -> list[int]:
    """Return the best ordering by trying every one (small pages only: ``n!`` lists)."""
    best: tuple[int, ...] = tuple(range(len(scores)))
    best_v = value.value(scores, cats, best)
    for perm in permutations(range(len(scores))):
        v = value.value(scores, cats, perm)
        if v > best_v:
            best, best_v = perm, v
    return list(best)
