"""Ranking metrics of held-out scores: ROC AUC and log loss (plain Python, no numpy needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["auc", "log_loss"]


def auc(scores: Sequence[float], labels: Sequence[float]) -> float:
    """Return the ROC AUC of ``scores`` for the binary ``labels`` (ties count one half).

    Returns nan when the labels hold a single class.
    """
    pairs = sorted(zip(scores, labels, strict=True))
    pos = sum(1 for _, y in pairs if y > 0.5)
    neg = len(pairs) - pos
    if not pos or not neg:
        return math.nan
    rank_sum, i = 0.0, 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        avg = (i + j + 1) / 2.0  # 1-based average rank of the tie group
        rank_sum += avg * sum(1 for _, y in pairs[i:j] if y > 0.5)
        i = j
    return (rank_sum - pos * (pos + 1) / 2.0) / (pos * neg)


def log_loss(scores: Sequence[float], labels: Sequence[float], eps: float = 1e-7) -> float:
    """Return the mean binary log loss of probabilities ``scores`` (clipped to ``[eps, 1-eps]``)."""
    total = 0.0
    for p, y in zip(scores, labels, strict=True):
        q = min(max(p, eps), 1.0 - eps)
        total -= y * math.log(q) + (1.0 - y) * math.log(1.0 - q)
    return total / max(len(labels), 1)
