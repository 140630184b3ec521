"""The replay's per-item loop and its writer of records, as one compiled unit.

A replay's input is mostly events, each handed to the engine's ``process_into``, and its records
are written as JSON lines. :func:`drive` runs that loop for up to ``limit`` items (the replay's
checkpoint interval) and hands back what it counted; :func:`write_records` writes one batch of
records. They live here, not in the replay module (a shell around files and the store, which
the compiled build leaves interpreted), so that the compiled build runs them as native loops
(docs/performance.md, "Fifth round"). The replay uses :func:`drive` when nothing else must see
each event (no ``--speed`` pacing, ``--run-tasks``, ``--report`` or ``--sizes``); otherwise its
own loop, which writes through :func:`write_records` as well. What the two produce is the same,
record for record: ``tests/unit/replay/test_replay_drive.py`` checks one against the other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

import orjson

from streamfeat._event import Event
from streamfeat._records import Record, public

__all__ = ["drive", "write_records"]

_NEWLINE: Final = orjson.OPT_APPEND_NEWLINE


def write_records(
    write: Callable[[bytes], object], records: list[Record], kinds: dict[str, int]
) -> int:
    """Write each record as one JSON line (attachments stripped: :func:`public`), count it under
    its kind in ``kinds`` and return the number of bytes written."""
    dumps = orjson.dumps
    written = 0
    for r in records:
        line = dumps(public(r), option=_NEWLINE)
        write(line)
        written += len(line)
        kind: str = r["kind"]
        kinds[kind] = kinds.get(kind, 0) + 1
    return written


def drive(
    items: Iterator[Any],
    process: Callable[[Event, list[Record]], None],
    write: Callable[[bytes], object],
    kinds: dict[str, int],
    quarantine: list[Any],
    limit: int,
) -> tuple[int, int, int, int]:
    """Take up to ``limit`` items from ``items`` (events and quarantine entries), process each
    event, write the records of each item before taking the next.

    A quarantine entry is appended to ``quarantine`` and written as a ``quarantine`` record.
    Returns (items taken, events, quarantine entries, bytes written); fewer than ``limit`` items
    taken means ``items`` is exhausted.
    """
    records: list[Record] = []
    taken = 0
    events = 0
    quarantined = 0
    written = 0
    while taken < limit:
        item = next(items, None)
        if item is None:
            break
        taken += 1
        if type(item) is Event:
            process(item, records)
            events += 1
        else:
            quarantine.append(item)
            quarantined += 1
            records.append({"kind": "quarantine", "line": item.position, "reason": item.reason})
        if records:
            written += write_records(write, records, kinds)
            records.clear()
    return taken, events, quarantined, written
