"""Fill a :class:`ReportCollector` from the files a replay left (OUT and its input)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import IO

import orjson

from streamfeat.report._collect import ReportCollector

__all__ = ["collect_files"]


def _open(path: str | Path) -> IO[bytes]:
    p = Path(path)
    if p.suffix == ".gz":
        return gzip.open(p, "rb")  # type: ignore[return-value]  # a GzipFile is an IO[bytes]
    return p.open("rb")


def collect_files(
    out: str | Path, *, events: str | Path | None = None, collector: ReportCollector | None = None
) -> ReportCollector:
    """Read a replay's OUT (JSON lines) and, optionally, its input events (JSONL, maybe .gz).

    Lines that do not parse, and events without an integer ``ts``, are skipped: the replay
    already quarantined them, and OUT holds their quarantine records.
    """
    col = collector or ReportCollector()
    with _open(out) as fh:
        for line in fh:
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                col.record(rec)
    if events is not None:
        with _open(events) as fh:
            for line in fh:
                try:
                    ev = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(ev, dict) and type(ev.get("ts")) is int:
                    col.event(ev["ts"])
    return col
