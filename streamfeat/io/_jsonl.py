"""One JSON line to an event or a quarantine entry: the rule every reader of JSON lines uses.

Kept apart from :mod:`streamfeat.io._readers` (files, gzip, msgpack) so that the optional
compiled core can compile it: a replay runs :func:`parse_jsonl_line` once per line, and from
compiled code its call of :func:`~streamfeat._event.event_from_obj` is a direct one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Final

import orjson

from streamfeat._event import Event, event_from_obj
from streamfeat.errors import EventError
from streamfeat.io._store import QuarantineEntry

__all__ = ["parse_jsonl_line", "read_jsonl"]

_loads: Final = orjson.loads  # read once: a module attribute is looked up at every call

TWICE = "appears twice in one object (duplicate keys are refused: parsers disagree on which wins)"


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise _DuplicateKey(k)
            seen.add(k)
    return obj


def exact_event(line: bytes) -> Event:
    """Validate ``line`` again with the standard library's parser, which keeps integers of any
    size exact (orjson turns one beyond 64 bits into a float) and sees duplicate keys.

    Only for the rare lines that need it: a refused event (so that the reason is exact:
    ``ts = 2**70`` is an integer out of range, not a float) and a line with more colons than
    keys (a colon inside a string, or a key given twice).

    Raises:
        EventError: the line's event breaks the contract, or an object has a key twice.
    """
    try:
        obj = json.loads(line, object_pairs_hook=_pairs)
    except _DuplicateKey as exc:
        raise EventError(exc.key, TWICE) from None
    return event_from_obj(obj)


def read_jsonl(
    stream: Iterable[bytes], *, source: str = "-", skip: int = 0
) -> Iterator[Event | QuarantineEntry]:
    """Yield one Event or QuarantineEntry per line of ``stream``.

    Args:
        stream: a binary stream of JSON lines (any iterable of lines).
        source: the name used in quarantine entries.
        skip: lines to skip first (resuming after a checkpoint); positions still count them.
    """
    line_no = 0
    for line in stream:
        line_no += 1
        if line_no <= skip:
            continue
        yield parse_jsonl_line(line, line_no, source)


def parse_jsonl_line(line: bytes, line_no: int, source: str) -> Event | QuarantineEntry:
    """One JSON line to an Event or a QuarantineEntry (its reason naming ``line_no``): the one
    rule every reader of JSON lines uses (the replay, the agent, a partitioned replay)."""
    try:
        # orjson skips the trailing newline as JSON whitespace: no strip on the hot path
        obj = _loads(line)
        if type(obj) is dict:
            a = obj.get("args")
            # each key has its colon: more colons than keys is a colon in a string or a key
            # given twice (which orjson would silently resolve to the last value)
            if line.count(b":") > len(obj) + (len(a) if type(a) is dict else 0):
                return exact_event(line)
        return event_from_obj(obj)
    except orjson.JSONDecodeError as exc:
        body = line.rstrip(b"\r\n")
        why = "empty line" if not body.strip() else f"not valid JSON ({exc.msg})"
        return QuarantineEntry(source, line_no, body, f"line {line_no}: {why}")
    except EventError:
        body = line.rstrip(b"\r\n")
        try:
            return exact_event(line)  # an integer item beyond 64 bits is a valid event
        except EventError as exc:
            return QuarantineEntry(source, line_no, body, f"line {line_no}: {exc}")
