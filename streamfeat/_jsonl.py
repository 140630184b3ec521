"""Fast JSON-lines encoding of event batches, shared by ``generate`` and ``convert``."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["jsonl"]

_BOUNDARY = b'},{"device":'
_LINE_BREAK = b'}\n{"device":'


def jsonl(batch: list[dict[str, Any]]) -> bytes:
    """Return the JSON lines (each ending in ``\\n``) of a batch of event dicts.

    One ``orjson.dumps`` of the whole list, then each ``},{"device":`` between two events
    becomes a line break: a fifth faster than a call per event, and it keeps memory flat (a
    batch of small encoded lines made malloc grow and trim the heap each batch). The pattern
    can only be structure (a quote inside a JSON string is always escaped, and an event's only
    nested object, ``args``, holds scalars), so for events that start with ``device`` it
    occurs exactly between events; the line count checks that, with a line per event as the
    fallback (events without ``device`` first, or other dicts).

    >>> jsonl([{"device": "a", "ts": 1}, {"device": "b", "ts": 2}])
    b'{"device":"a","ts":1}\\n{"device":"b","ts":2}\\n'
    """
    if not batch:
        return b""
    text = orjson.dumps(batch)[1:-1].replace(_BOUNDARY, _LINE_BREAK) + b"\n"
    if text.count(b"\n") == len(batch):
        return text
    opt = orjson.OPT_APPEND_NEWLINE
    return b"".join(orjson.dumps(ev, option=opt) for ev in batch)
