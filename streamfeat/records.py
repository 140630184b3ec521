"""Records: the plain dicts an engine and its tasks emit (docs/spec.md section 6).

Shapes: ``trigger``, ``window``, ``feature``, ``late``, ``task`` and ``quarantine`` (see
:mod:`streamfeat._records`). Keys starting with ``_`` are in-process attachments (the matched
events of a firing, raw sizes); :func:`public` strips them, :func:`dumps_record` writes the
JSON line a replay's OUT holds.
"""

from __future__ import annotations

from streamfeat._records import Record, dumps_record, public, raw_size

__all__ = ["Record", "dumps_record", "public", "raw_size"]
