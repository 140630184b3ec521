"""The page-view sequence (d1-d12) and the model inputs built for one re-rank.

:class:`PageViews` keeps a device's last item-page visits, from the values of ``ipv`` feature
records (:mod:`streamfeat.features.ipv`); :func:`build_inputs` turns a page snapshot and that
sequence into one float32 array per declared model input, rows in the declared field order.
Every context sequence starts with one all-zero row (the begin marker the model expects), so
a device with no history still gets a valid input.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from streamfeat.models import InputSpec
from streamfeat.models.edgerec import PAGE_VIEW_BEHAVIOUR
from streamfeat.ranking._page import Snapshot

__all__ = ["PageViews", "build_inputs"]

F32 = npt.NDArray[np.float32]


class PageViews:
    """A device's last ``maxlen`` item-page visits, as page-view rows.

    Args:
        maxlen: how many visits are kept.
        category_of: the category of an item, or None when unknown (then 0).
    """

    def __init__(
        self, maxlen: int = 50, category_of: Callable[[str], float | None] | None = None
    ) -> None:
        self.rows: deque[dict[str, float]] = deque(maxlen=maxlen)
        self._category_of = category_of

    def add(self, values: Mapping[str, Any]) -> None:
        """Add one visit from an ``ipv`` record's values (``item``, ``dwell_ms``, counts)."""
        row: dict[str, float] = {}
        for name in PAGE_VIEW_BEHAVIOUR:
            v = values.get(name, 0)
            row[name] = float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0
        item = values.get("item")
        cat = self._category_of(str(item)) if self._category_of and item is not None else None
        row["category"] = float(cat) if cat is not None else 0.0
        self.rows.append(row)

    def last(self, n: int) -> list[dict[str, float]]:
        """Return the last ``n`` rows, oldest first."""
        return list(self.rows)[-n:] if n > 0 else []


def _matrix(rows: Sequence[Mapping[str, float]], fields: Sequence[str], begin: bool) -> F32:
    out = np.zeros((len(rows) + (1 if begin else 0), len(fields)), dtype=np.float32)
    off = 1 if begin else 0
    for r, row in enumerate(rows):
        for c, name in enumerate(fields):
            out[r + off, c] = row.get(name, 0.0)
    return out


def build_inputs(
    specs: Sequence[InputSpec],
    snapshot: Snapshot,
    page_views: Sequence[Mapping[str, float]],
) -> dict[str, F32]:
    """Return one ``[1, N, len(fields)]`` float32 array per declared input.

    ``candidates`` inputs get the snapshot's unseen candidates (in display order);
    ``exposures`` the snapshot's exposure rows; ``page_views`` the given page-view rows. The
    two context sequences start with the all-zero begin row.
    """
    feeds: dict[str, F32] = {}
    for spec in specs:
        if spec.source == "candidates":
            rows: Sequence[Mapping[str, float]] = [c.features for c in snapshot.unseen]
            m = _matrix(rows, spec.fields, begin=False)
        elif spec.source == "exposures":
            m = _matrix(snapshot.exposure_rows, spec.fields, begin=True)
        else:
            m = _matrix(page_views, spec.fields, begin=True)
        feeds[spec.name] = m[None]
    return feeds
