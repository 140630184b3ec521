"""The re-rank task kinds of a tasks file: ``[tasks.NAME]`` with ``kind = "edgerec"`` or
``kind = "kuaishou"``.

```toml
[tasks.rerank]
kind = "edgerec"          # or "kuaishou"
model = "edgerec"         # a [models.NAME] of the same file
feed = "home_feed"        # the feed (page) whose candidates it re-ranks
k = 5                     # edgerec: exposures without a click that fire it
strategy = "greedy"       # or "beam" (default for kuaishou)
width = 8                 # beam width
depth = 6                 # positions the beam searches (default: all for edgerec, 6 for kuaishou)
penalty = 0.1             # beam: per same-category item among the `window` items before
window = 1
discount = 0.9            # beam: position discount
timeout = "200ms"         # inference time limit; past it the previous order stays
max_exposures = 50        # context sequence lengths
max_page_views = 20
record_inputs = true      # the task record carries the model inputs (for training)
apply = true              # false: a shadow re-rank, recorded but the order shown is kept
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamfeat._durations import parse_duration
from streamfeat.errors import ConfigError

__all__ = ["RERANK_KINDS", "RerankTaskConfig", "parse_rerank_task"]

RERANK_KINDS = ("edgerec", "kuaishou")
_KEYS = ("kind", "model", "feed", "k", "strategy", "width", "depth", "penalty", "window",
         "discount", "timeout", "max_exposures", "max_page_views", "record_inputs",
         "apply")  # fmt: skip


@dataclass(frozen=True, slots=True)
class RerankTaskConfig:
    """One re-rank task (times in ms)."""

    name: str
    kind: str
    model: str
    feed: str = "home_feed"
    k: int = 5
    strategy: str = "greedy"
    width: int = 8
    depth: int | None = None
    penalty: float = 0.1
    window: int = 1
    discount: float = 0.9
    timeout: int = 200
    max_exposures: int = 50
    max_page_views: int = 20
    record_inputs: bool = True
    apply: bool = True


def _bool(key: str, v: Any, file: str | None) -> bool:
    if not isinstance(v, bool):
        msg = f"must be true or false, got {v!r}"
        raise ConfigError(msg, file=file, key=key)
    return v


def _int(key: str, v: Any, lo: int, hi: int, file: str | None) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        msg = f"must be an integer in [{lo}, {hi}], got {v!r}"
        raise ConfigError(msg, file=file, key=key)
    return v


def _num(key: str, v: Any, lo: float, hi: float, file: str | None) -> float:
    if not isinstance(v, int | float) or isinstance(v, bool) or not lo <= v <= hi:
        msg = f"must be a number in [{lo}, {hi}], got {v!r}"
        raise ConfigError(msg, file=file, key=key)
    return float(v)


def parse_rerank_task(
    name: str, t: Mapping[str, Any], models: Mapping[str, Any], *, file: str | None = None
) -> RerankTaskConfig:
    """Validate one re-rank task table.

    Args:
        name: the task's name.
        t: its table.
        models: the ``[models]`` of the same file (the task's ``model`` must be one).
        file: the tasks file, for errors.

    Raises:
        ConfigError: naming the file, the key and the reason.
    """
    base = f"tasks.{name}"
    for k in t:
        if k not in _KEYS:
            msg = f"is not a known key of a {t.get('kind')} task (known: {', '.join(_KEYS)})"
            raise ConfigError(msg, file=file, key=f"{base}.{k}")
    kind = t.get("kind")
    if kind not in RERANK_KINDS:
        msg = f"must be one of {', '.join(RERANK_KINDS)}, got {kind!r}"
        raise ConfigError(msg, file=file, key=f"{base}.kind")
    model = t.get("model")
    if not isinstance(model, str) or model not in models:
        known = ", ".join(sorted(models)) or "none declared"
        msg = f"must name a [models.NAME] of this file ({known}), got {model!r}"
        raise ConfigError(msg, file=file, key=f"{base}.model")
    feed = t.get("feed", "home_feed")
    if not isinstance(feed, str) or not 0 < len(feed) <= 128:
        msg = f"must be a page name of 1-128 chars, got {feed!r}"
        raise ConfigError(msg, file=file, key=f"{base}.feed")
    strategy = t.get("strategy", "beam" if kind == "kuaishou" else "greedy")
    if strategy not in ("greedy", "beam"):
        msg = f'must be "greedy" or "beam", got {strategy!r}'
        raise ConfigError(msg, file=file, key=f"{base}.strategy")
    depth_raw = t.get("depth", 6 if kind == "kuaishou" else None)
    depth = None if depth_raw is None else _int(f"{base}.depth", depth_raw, 1, 1000, file)
    timeout_raw = t.get("timeout", "200ms")
    try:
        timeout = parse_duration(timeout_raw) if isinstance(timeout_raw, str) else None
    except ValueError as exc:
        raise ConfigError(str(exc), file=file, key=f"{base}.timeout") from exc
    if timeout is None or timeout < 1:
        msg = f'must be a duration such as "200ms", got {timeout_raw!r}'
        raise ConfigError(msg, file=file, key=f"{base}.timeout")
    return RerankTaskConfig(
        name=name, kind=kind, model=model, feed=feed,
        k=_int(f"{base}.k", t.get("k", 5), 1, 10_000, file),
        strategy=strategy,
        width=_int(f"{base}.width", t.get("width", 8), 1, 1000, file),
        depth=depth,
        penalty=_num(f"{base}.penalty", t.get("penalty", 0.1), 0.0, 1e6, file),
        window=_int(f"{base}.window", t.get("window", 1), 0, 1000, file),
        discount=_num(f"{base}.discount", t.get("discount", 0.9), 0.0, 1.0, file),
        timeout=timeout,
        max_exposures=_int(f"{base}.max_exposures", t.get("max_exposures", 50), 0, 10_000, file),
        max_page_views=_int(f"{base}.max_page_views", t.get("max_page_views", 20), 0, 10_000, file),
        record_inputs=_bool(f"{base}.record_inputs", t.get("record_inputs", True), file),
        apply=_bool(f"{base}.apply", t.get("apply", True), file),
    )  # fmt: skip
