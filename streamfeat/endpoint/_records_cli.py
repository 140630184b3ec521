"""``streamfeat records``: what the endpoint stored, decoded, as a table, JSON lines, CSV or Parquet."""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
from rich.console import Console
from rich.table import Table

from streamfeat.endpoint._records import (
    KINDS,
    RecordQuery,
    arrow_columns,
    arrow_schema,
    count_records,
    iter_records,
    parse_time,
)
from streamfeat.errors import ConfigError, StreamfeatError

__all__ = ["add_parsers"]

FORMATS = ("table", "jsonl", "csv", "parquet")
TABLE_LIMIT = 100  # rows a terminal table shows unless --limit says otherwise
CSV_COLUMNS = ("id", "received", "device", "batch_id", "kind", "name", "time", "values", "record")


def add_parsers(sub: Any) -> None:
    """Add ``records`` to the ``streamfeat`` command line."""
    from streamfeat._cli_env import EnvDefault

    p = sub.add_parser(
        "records",
        help="list or export the records the endpoint stored, decoded",
        description="Read the endpoint's database (it may be serving) and list the decoded "
        "records it stored, newest first. Filters combine. Times: an ISO time with a zone "
        "(2026-01-01T10:00:00Z), a date (UTC), epoch ms, or a duration meaning that long ago "
        "(30m, 1h, 2d); they filter on the record's event time (ts, a window's end, a "
        "trigger's last_ts).",
    )  # fmt: skip
    p.add_argument(
        "--db", required=False, action=EnvDefault, envvar="STREAMFEAT_ENDPOINT_DB",
        metavar="ENDPOINT_DB",
        help="the endpoint's database: its SQLite file or postgresql://USER@HOST:PORT/DB",
    )  # fmt: skip
    p.add_argument("--device", metavar="D", help="only this device")
    p.add_argument("--kind", metavar="K", help=f"only this record kind ({', '.join(KINDS)})")
    p.add_argument("--name", metavar="N", help="only this feature / window / trigger / task name")
    p.add_argument("--since", metavar="T", help="event time at or after T")
    p.add_argument("--until", metavar="T", help="event time before T")
    p.add_argument(
        "--limit", type=int, metavar="N", help=f"at most N records (table default: {TABLE_LIMIT})"
    )
    p.add_argument(
        "--format", choices=FORMATS, default=None,
        help="table on a terminal, jsonl otherwise (parquet needs --out and pyarrow)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, metavar="F", help="write to F instead of standard output")
    p.add_argument("--no-progress", action="store_true", help="no progress bar for exports")
    p.set_defaults(func=_run, records_parser=p)


def _run(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.records_parser
    if args.db is None:
        parser.error("--db ENDPOINT_DB is required (or set STREAMFEAT_ENDPOINT_DB)")
    fmt = args.format or ("table" if args.out is None and sys.stdout.isatty() else "jsonl")
    if fmt == "parquet" and args.out is None:
        parser.error("--format parquet needs --out FILE")
    now_ms = int(time.time() * 1000)
    try:
        since = parse_time(args.since, now_ms=now_ms, what="--since") if args.since else None
        until = parse_time(args.until, now_ms=now_ms, what="--until") if args.until else None
        limit = args.limit if args.limit is not None or fmt != "table" else TABLE_LIMIT
        query = RecordQuery(args.device, args.kind, args.name, since, until, limit)
    except ConfigError as exc:
        parser.error(str(exc))
    err = Console(stderr=True)
    try:
        if fmt == "table":
            return _table(args, query, err)
        return _export(args, query, fmt, err)
    except StreamfeatError as exc:
        print(f"streamfeat records: {exc}", file=sys.stderr)
        return 1


def _iso(seconds: float) -> str:
    return (
        datetime.fromtimestamp(seconds, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _short(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%m-%d %H:%M:%S.%f")[:-3]


def _table(args: argparse.Namespace, query: RecordQuery, err: Console) -> int:
    if args.out is not None:
        out = Console(file=args.out.open("w", encoding="utf-8"), width=200)
    else:
        out = Console()
        if not out.is_terminal:
            out = Console(width=200)
    from streamfeat.endpoint._postgres import _redact

    t = Table(
        title=f"records in {_redact(args.db)}, newest stored first (times UTC)",
        title_justify="left",
    )
    cells = []
    for row in iter_records(args.db, query):
        rec = row["record"]
        vals = rec.get("values") if isinstance(rec, dict) and "values" in rec else _rest(rec)
        cells.append((_short(row["received"] * 1000), row["device"], row["kind"] or "",
                      row["name"] or "", "" if row["time"] is None else _short(row["time"]),
                      orjson.dumps(vals).decode()))  # fmt: skip
    n = len(cells)
    used = 1
    for i, col in enumerate(("stored", "device", "kind", "name", "event time")):
        # the short columns keep their width; the values column gives way (cut with "…")
        width = max([len(col), *(len(c[i]) for c in cells)])
        t.add_column(col, no_wrap=True, min_width=width)
        used += width + 3  # a cell's padding and its border
    t.add_column(
        "values", no_wrap=True, overflow="ellipsis", max_width=max(20, out.width - used - 4)
    )
    for c in cells:
        t.add_row(*c)
    out.print(t)
    if args.limit is None and n == query.limit:
        err.print(
            f"showing the newest {n}; --limit N for more, --format jsonl/csv/parquet to export"
        )
    return 0


def _rest(rec: Any) -> Any:
    if not isinstance(rec, dict):
        return rec
    skip = {"kind", "device", "feature", "window", "trigger", "task", "ts", "end", "last_ts"}
    return {k: v for k, v in rec.items() if k not in skip}


def _with_progress(
    rows: Iterator[dict[str, Any]], total: int, err: Console
) -> Iterator[dict[str, Any]]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("exporting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True) as bar:  # fmt: skip
        task = bar.add_task("records", total=total)
        for i, row in enumerate(rows, 1):
            yield row
            if i % 1000 == 0:
                bar.update(task, completed=i)
        bar.update(task, completed=total)


def _export(args: argparse.Namespace, query: RecordQuery, fmt: str, err: Console) -> int:
    rows: Iterator[dict[str, Any]] = iter_records(args.db, query)
    if args.out is not None and err.is_terminal and not args.no_progress:
        rows = _with_progress(rows, count_records(args.db, query), err)
    with ExitStack() as stack:
        if fmt == "parquet":
            n = _parquet(rows, args.out)
        else:
            fh: IO[bytes] = (
                stack.enter_context(args.out.open("wb")) if args.out else sys.stdout.buffer
            )
            writer: Callable[[Iterable[dict[str, Any]], IO[bytes]], int] = (
                _jsonl if fmt == "jsonl" else _csv
            )
            n = writer(rows, fh)
            fh.flush()
    if args.out is not None:
        err.print(f"wrote {n:,} records to {args.out}", highlight=False)
    return 0


def _jsonl(rows: Iterable[dict[str, Any]], fh: IO[bytes]) -> int:
    n = 0
    for row in rows:
        fh.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
        n += 1
    return n


def _csv(rows: Iterable[dict[str, Any]], fh: IO[bytes]) -> int:
    import io

    text = io.TextIOWrapper(fh, encoding="utf-8", newline="", write_through=True)
    w = csv.writer(text)
    w.writerow(CSV_COLUMNS)
    n = 0
    for row in rows:
        rec = row["record"]
        values = rec.get("values") if isinstance(rec, dict) and "values" in rec else None
        w.writerow([
            row["id"], _iso(row["received"]), row["device"], row["batch_id"], row["kind"],
            row["name"], "" if row["time"] is None else row["time"],
            "" if values is None else orjson.dumps(values).decode(), orjson.dumps(rec).decode(),
        ])  # fmt: skip
        n += 1
    text.detach()  # leave fh open for the caller
    return n


def _parquet(rows: Iterable[dict[str, Any]], path: Path) -> int:
    schema = arrow_schema()  # raises MissingExtraError with the pip line when absent
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 0
    with pq.ParquetWriter(str(path), schema) as w:
        chunk: list[dict[str, Any]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= 10_000:
                w.write_table(pa.Table.from_pydict(arrow_columns(chunk), schema=schema))
                n += len(chunk)
                chunk = []
        if chunk or n == 0:
            w.write_table(pa.Table.from_pydict(arrow_columns(chunk), schema=schema))
            n += len(chunk)
    return n
