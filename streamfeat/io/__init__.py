"""Shell-level I/O shared by the apps: the event readers and the device store.

* :func:`read_events` and friends read recorded logs (JSONL, gzip, msgpack) into events, and
  turn bad lines into :class:`QuarantineEntry` values instead of raising.
* :class:`Store` is the device's SQLite file: records, quarantine, checkpoints (mode 0600).

Replay and the agent use both; the core never imports this package.
"""

from __future__ import annotations

from streamfeat.io._readers import InputFile, detect_format, read_events, read_jsonl, read_msgpack
from streamfeat.io._store import SCHEMA_VERSION, Checkpoint, QuarantineEntry, Store

__all__ = [
    "SCHEMA_VERSION",
    "Checkpoint",
    "InputFile",
    "QuarantineEntry",
    "Store",
    "detect_format",
    "read_events",
    "read_jsonl",
    "read_msgpack",
]
