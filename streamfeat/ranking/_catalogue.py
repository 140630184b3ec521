"""A deterministic item catalogue: the candidate features of any item id.

The simulator and the endpoint share it (the default source of candidate pages), and the
build script of the shipped model uses it for its training pages, so all three agree on what
an item's features are. Features are a pure function of the item id:

* ``category``: for a generated item id (``category * 100_000 + rank``, see
  :mod:`streamfeat._gen_model`) its category; for any other id a hash into 100-291;
* ``server_score``: the server's predicted CTR, higher for popular (low-rank) items:
  ``0.2 / (1 + ln(1 + rank))`` times a per-item factor in [0.75, 1.25];
* ``price_level``: 0-4, and ``age_h``: hours since the item was listed, 0-719, from a hash.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

from streamfeat.ranking._page import Candidate, Page

__all__ = ["candidate", "catalogue_page", "item_features", "page_of"]


def _hash(item: str) -> int:
    return int.from_bytes(hashlib.blake2b(item.encode(), digest_size=8).digest(), "big")


def item_features(item: str) -> dict[str, float]:
    """Return the catalogue's feature vector of ``item``."""
    h = _hash(item)
    if item.isdigit() and 100 <= int(item) // 100_000 < 292:
        category, rank = int(item) // 100_000, int(item) % 100_000
    else:
        category, rank = 100 + h % 192, 1 + (h >> 8) % 20_000
    factor = 0.75 + ((h >> 24) % 1000) / 2000.0
    return {
        "category": float(category),
        "server_score": round(0.2 / (1.0 + math.log1p(rank)) * factor, 6),
        "price_level": float((h >> 40) % 5),
        "age_h": float((h >> 44) % 720),
    }


def candidate(item: str) -> Candidate:
    """Return ``item`` as a candidate with its catalogue features."""
    return Candidate(item, item_features(item))


def page_of(feed: str, page_id: str, items: Iterable[str]) -> Page:
    """Return a page of ``items`` (in that order) with their catalogue features."""
    return Page.of(feed, page_id, (candidate(i) for i in items))


def catalogue_page(feed: str, page_id: str, key: str, size: int = 50) -> Page:
    """Return a server-side page: ``size`` items drawn from the catalogue (deterministic in
    ``key``, e.g. device and cursor) across categories, popular ranks more often, in the
    server's order (descending ``server_score``, ties by item id)."""
    items: list[str] = []
    i = 0
    while len(items) < size:
        h = _hash(f"{key}/{i}")
        i += 1
        category = 100 + h % 192
        rank = 1 + int(((((h >> 16) % 65536) + 0.5) / 65536) ** -0.95) % 20_000
        item = str(category * 100_000 + rank)
        if item not in items:
            items.append(item)
    ordered = sorted(items, key=lambda it: (-item_features(it)["server_score"], it))
    return page_of(feed, page_id, ordered)
