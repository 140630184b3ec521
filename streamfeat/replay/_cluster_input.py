"""The input units of a partitioned replay in a format other than JSON lines (msgpack).

A JSONL partition routes each line from its bytes and parses only its own
(:mod:`streamfeat.replay._partition`). A msgpack stream has no line framing to look into, so
here every partition reads the inputs with the single-process reader
(:func:`streamfeat.io._readers.read_events`): one Event or QuarantineEntry per message,
exactly as ``streamfeat replay FILE --format msgpack`` sees them (the same quarantine
reasons, the same truncated or unreadable tails), and keeps the events of its devices. An
event belongs to partition ``crc32(device as UTF-8) % P``, the same hash as a JSONL line; every
quarantine entry belongs to partition 0. The cost is that every partition unpacks and checks
every message (the JSONL path skips most lines unparsed); docs/scale.md has the figures.

Several files are read one after another as one input: positions (the merge keys, a
quarantine record's ``line``) continue from one file to the next, and a quarantine entry keeps
the message number within its own file in its reason and its own file as its source.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterator

from streamfeat._event import Event
from streamfeat.io._readers import InputFile, read_events
from streamfeat.io._store import QuarantineEntry

__all__ = ["FORMATS", "msgpack_units", "parsed_unit", "route_unit"]

FORMATS = ("jsonl", "msgpack")

Unit = Event | QuarantineEntry


def msgpack_units(inputs: tuple[str, ...]) -> Iterator[tuple[Unit, str]]:
    """Every message of the msgpack inputs, in order, parsed, with its file's name."""
    offset = 0
    for name in inputs:
        source = InputFile(name)
        n = 0
        try:
            for item in read_events(source, fmt="msgpack"):
                n += 1
                if offset and type(item) is QuarantineEntry:
                    item = dataclasses.replace(item, position=item.position + offset)
                yield item, source.name
        finally:
            source.close()
        offset += n


def route_unit(unit: Unit, partitions: int) -> int:
    """The partition that owns a parsed unit: its event's device's, or 0 for quarantine."""
    if partitions == 1 or type(unit) is not Event:
        return 0
    return zlib.crc32(unit.device.encode("utf-8", "surrogatepass")) % partitions


def parsed_unit(unit: Unit, position: int, source: str) -> Unit:
    """The unit itself (it was parsed when read): the msgpack twin of ``parse_line``."""
    return unit
