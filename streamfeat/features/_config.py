"""One ``[features.NAME]`` table of a tasks file: :class:`FeatureConfig` and its parser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamfeat._tables import TableReader

__all__ = ["DEFAULT_IPV_ACTIONS", "FEATURE_KINDS", "FeatureConfig", "parse_feature"]

DEFAULT_IPV_ACTIONS = (
    "add_cart", "purchase", "favorite", "comment", "select_sku", "ask",
    "service", "detail", "shop", "recommend", "share", "scroll",
)  # fmt: skip
FEATURE_KINDS = ("ipv", "exposure")
_KEYS = {"ipv": ("kind", "actions", "page"), "exposure": ("kind", "feed_pages")}


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    """One ``[features.NAME]`` table: a built-in feature and its options."""

    name: str
    kind: str
    actions: tuple[str, ...] = DEFAULT_IPV_ACTIONS  # ipv
    page: str = "item_detail"  # ipv: the detail page
    feed_pages: tuple[str, ...] = ("home_feed",)  # exposure: the feed pages


def parse_feature(name: str, table: object, reader: TableReader) -> FeatureConfig:
    """Validate the table of feature ``name``.

    Raises:
        ConfigError: from ``reader``, naming the file, the dotted key and the reason.
    """
    base = f"features.{reader.name(f'features.{name}', name)}"
    if not isinstance(table, dict):
        raise reader.fail(base, "must be a table")
    kind = table.get("kind")
    if kind not in FEATURE_KINDS:
        raise reader.fail(
            f"{base}.kind", f"must be one of {', '.join(FEATURE_KINDS)}, got {kind!r}"
        )
    allowed = _KEYS[kind]
    for k in table:
        if k not in allowed:
            raise reader.fail(
                f"{base}.{k}", f"is not a key of a {kind} feature (known: {', '.join(allowed)})"
            )
    d = FeatureConfig(name, kind)
    actions = reader.strings(f"{base}.actions", table.get("actions", list(d.actions)))
    page = table.get("page", d.page)
    if not isinstance(page, str) or not page:
        raise reader.fail(f"{base}.page", f"must be a page name, got {page!r}")
    feed = reader.strings(f"{base}.feed_pages", table.get("feed_pages", list(d.feed_pages)))
    return FeatureConfig(name, kind, actions, page, feed)
