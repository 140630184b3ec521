"""Records: the plain dicts stages emit (SPEC section 6), and helpers around them.

Record shapes (``values`` keys of built-in features are fixed in docs/design.md):

* ``{"kind": "trigger", "trigger", "device", "first", "last", "first_ts", "last_ts"}``
* ``{"kind": "window", "window", "device", "key", "start", "end", "values", "forced", "final"}``
  (``final`` repeats ``forced``; deprecated, emitted for one more release)
* ``{"kind": "feature", "feature", "device", "ts", "values"}``
* ``{"kind": "late", "window", "device", "ts", "event"}`` (``event``: the late event itself)
* ``{"kind": "task", "task", "device", "ts", "values"}`` (emitted by tasks)
* ``{"kind": "quarantine", "line", "reason"}`` (emitted by readers, not stages)

Keys starting with ``_`` are in-process attachments: ``_events`` (the matched events of a
trigger firing, for its tasks) and ``_raw_bytes`` (the JSON-line bytes of the events that made a
window or feature record, when a stage is built with ``sizes=True``). The public home of these
names is :mod:`streamfeat.records`.
"""

from __future__ import annotations

from typing import Any

import orjson

from streamfeat._event import Event, event_to_obj

__all__ = ["Record", "dumps_record", "public", "raw_size"]

#: A record: a plain dict with a ``kind`` key (SPEC section 6); ``_`` keys stay in process.
Record = dict[str, Any]


def public(record: dict[str, Any]) -> dict[str, Any]:
    """Return ``record`` without its in-process ``_`` attachments (the same dict if it has none)."""
    for k in record:  # a plain loop: this runs once per record written (no generator frame)
        if k.startswith("_"):  # (a primitive of the compiled build; a slice makes a string)
            return {k: v for k, v in record.items() if not k.startswith("_")}
    return record


def dumps_record(record: dict[str, Any]) -> bytes:
    """Return the JSON line (with ``\\n``) of a record, attachments stripped."""
    return orjson.dumps(public(record), option=orjson.OPT_APPEND_NEWLINE)


def raw_size(event: Event) -> int:
    """Return the bytes of ``event`` as one JSON line: the "raw events" measure of size reports."""
    return len(orjson.dumps(event_to_obj(event))) + 1
