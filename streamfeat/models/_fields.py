"""The EdgeRec-style model's input rows: field names and column order (re-exported by
:mod:`streamfeat.models.edgerec`)."""

from __future__ import annotations

__all__ = [
    "CANDIDATE_FIELDS",
    "EXPOSURE_BEHAVIOUR",
    "EXPOSURE_FIELDS",
    "NORM_FIELDS",
    "NORM_PREFIXES",
    "PAGE_VIEW_BEHAVIOUR",
    "PAGE_VIEW_FIELDS",
    "PROBABILITY_FIELDS",
]

#: The candidate feature vector (column order of the ``candidates`` input).
CANDIDATE_FIELDS = ("category", "server_score", "price_level", "age_h")
#: e1-e7 per exposed item, after the item's own features.
EXPOSURE_BEHAVIOUR = ("exposure_ms", "exposures", "max_scroll_speed", "scrolls", "clicked",
                      "deleted", "first_pos")  # fmt: skip
EXPOSURE_FIELDS = CANDIDATE_FIELDS + EXPOSURE_BEHAVIOUR
#: d1-d12 per item-page visit, after the item's category.
PAGE_VIEW_BEHAVIOUR = ("dwell_ms", "add_cart", "purchase", "favorite", "comment", "select_sku",
                       "ask", "service", "detail", "shop", "recommend", "share")  # fmt: skip
PAGE_VIEW_FIELDS = ("category", *PAGE_VIEW_BEHAVIOUR)
#: Input scaling constants: key prefix per input, its row fields after the category.
NORM_PREFIXES = {"candidates": "cand", "exposures": "exp", "page_views": "pv"}
NORM_FIELDS = {
    "cand": CANDIDATE_FIELDS[1:],
    "exp": EXPOSURE_FIELDS[1:],
    "pv": PAGE_VIEW_FIELDS[1:],
}
#: Columns read as a probability (their logit, not slog, is standardised).
PROBABILITY_FIELDS = frozenset({"server_score"})
