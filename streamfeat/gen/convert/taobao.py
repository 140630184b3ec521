"""Taobao UserBehavior CSV (Alibaba Tianchi dataset 649) to SPEC events.

Source rows: ``user_id,item_id,category_id,behavior_type,timestamp`` with no header, integer
ids, ``behavior_type`` in ``pv``/``cart``/``fav``/``buy``, and epoch seconds.

Mapping: ``device`` = the user id (as a string), ``ts`` = seconds x 1000, ``type`` =
``page_enter`` (pv), ``add_cart`` (cart), ``favorite`` (fav) or ``purchase`` (buy), always on
page ``item_detail``, ``item`` = the item id (as a string), ``args.category`` = the category id
(an integer). The source has no page exits, no exposures, no sessions and one-second
resolution; nothing is invented for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from streamfeat._event import MAX_TS
from streamfeat.gen.convert._core import Converter, Reject

__all__ = ["BEHAVIOR_TYPES", "TAOBAO", "convert_taobao"]

#: Source ``behavior_type`` -> SPEC event ``type``.
BEHAVIOR_TYPES = {"pv": "page_enter", "cart": "add_cart", "fav": "favorite", "buy": "purchase"}
_TYPES = {k.encode(): v for k, v in BEHAVIOR_TYPES.items()}
_COLUMNS = ("user_id", "item_id", "category_id", "behavior_type", "timestamp")
_MAX_SECONDS = (MAX_TS - 1) // 1000
_MAX_ID_CHARS = 128


def convert_taobao(lines: Iterable[bytes]) -> Iterator[dict[str, Any] | Reject]:
    """Yield one SPEC event dict or one :class:`Reject` per source line, in order."""
    types = _TYPES
    for n, raw in enumerate(lines, 1):
        row = raw.rstrip(b"\r\n")
        parts = row.split(b",")
        if len(parts) == 5:
            user, item, cat, behavior, sec = parts
            etype = types.get(behavior)
            if (
                etype is not None
                and user.isdigit()
                and item.isdigit()
                and cat.isdigit()
                and sec.isdigit()
                and len(user) <= _MAX_ID_CHARS
                and len(item) <= _MAX_ID_CHARS
                and int(sec) <= _MAX_SECONDS
            ):
                yield {
                    "device": user.decode(),
                    "ts": int(sec) * 1000,
                    "type": etype,
                    "page": "item_detail",
                    "item": item.decode(),
                    "args": {"category": int(cat)},
                }
                continue
        yield Reject(n, row, _reason(parts))


def _reason(parts: list[bytes]) -> str:
    """Say what is wrong with a row the fast path refused (slow, rare)."""
    if len(parts) != 5:
        if parts == [b""]:
            return "empty row"
        return f"expected 5 comma-separated fields, got {len(parts)}"
    for i in (0, 1, 2, 4):
        value = parts[i]
        if not value.isdigit():
            return f"`{_COLUMNS[i]}` must be a non-negative integer, got {_show(value)}"
    for i in (0, 1):
        if len(parts[i]) > _MAX_ID_CHARS:
            return f"`{_COLUMNS[i]}` must be at most {_MAX_ID_CHARS} digits"
    if parts[3] not in _TYPES:
        return f"`behavior_type` must be one of pv, cart, fav, buy, got {_show(parts[3])}"
    return f"`timestamp` must be below {_MAX_SECONDS + 1} seconds, got {_show(parts[4])}"


def _show(value: bytes) -> str:
    text = value.decode("utf-8", "backslashreplace")
    return '"' + (text if len(text) <= 40 else text[:37] + "...") + '"'


TAOBAO = Converter(
    name="taobao",
    description="Taobao UserBehavior CSV (user,item,category,pv|cart|fav|buy,seconds)",
    convert=convert_taobao,
)
