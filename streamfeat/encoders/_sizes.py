"""The size report: per record type, the bytes of raw events, records as JSON, and each codec.

Feed it the records a replay produces (:meth:`SizeReport.add`); window and feature records
carry ``_raw_bytes`` (the JSON-line bytes of the events that made them) when the stages run
with ``sizes=True``, and trigger records carry their matched ``_events``, whose JSON-line
bytes are counted the same way. Each codec encodes the records of one type and one device in
batches of ``batch_records`` (a device uploads its own records, so a batch never mixes
devices; the header and string dictionary are paid once per batch, as uploads pay them), and
the batches' bytes are charged to that type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from streamfeat._records import dumps_record, raw_size
from streamfeat.encoders._batch import Encoder
from streamfeat.encoders._ids import Admission
from streamfeat.encoders._schema import NAME_KEY, SchemaSet

__all__ = ["SizeReport", "SizeRow"]


@dataclass
class SizeRow:
    """The sizes of one record type (or of the total)."""

    label: str
    records: int = 0
    raw: int = 0
    json: int = 0
    codecs: dict[str, int] = field(default_factory=dict)

    def reduction(self, nbytes: int) -> float | None:
        """Return ``1 - nbytes / raw`` in percent (None without raw bytes)."""
        return 100.0 * (1.0 - nbytes / self.raw) if self.raw else None

    def share(self, nbytes: int) -> float | None:
        """Return ``nbytes / raw`` in percent (None without raw bytes)."""
        return 100.0 * nbytes / self.raw if self.raw else None

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON-ready figures of this row."""
        sizes = {"json": self.json, **self.codecs}
        return {
            "records": self.records,
            "raw_bytes": self.raw,
            "json_bytes": self.json,
            "codec_bytes": dict(self.codecs),
            "bytes_per_record": {
                k: v / self.records if self.records else None for k, v in sizes.items()
            },
            "pct_of_raw": {k: self.share(v) for k, v in sizes.items()},
            "reduction_pct": {k: self.reduction(v) for k, v in sizes.items()},
        }


def record_label(record: dict[str, Any]) -> str:
    """Return the size-report label of a record: ``feature:ipv``, ``window:clicks_10m``, ..."""
    kind = record.get("kind")
    key = NAME_KEY.get(kind) if isinstance(kind, str) else None
    if key is None:
        return str(kind)
    return f"{kind}:{record.get(key)}"


def record_raw_bytes(record: dict[str, Any]) -> int:
    """Return the raw-event bytes behind a record (0 when the record does not carry them)."""
    raw = record.get("_raw_bytes")
    if type(raw) is int:
        return raw
    events = record.get("_events")
    if events:
        return sum(raw_size(e) for e in events)
    return 0


class SizeReport:
    """Accumulates sizes per record type; :meth:`rows` / :meth:`table` / :meth:`as_dict` report.

    Args:
        schemas: the schema set of the tasks file the records came from.
        codecs: the codecs measured (the records as JSON lines are always measured; the
            ``json`` codec adds only its 9-byte headers to them).
        batch_records: records per batch.
        admission: a factory of admission filters (one per codec, so each sees every id
            once), or None to measure ids sent verbatim.
    """

    def __init__(
        self,
        schemas: SchemaSet,
        *,
        codecs: Iterable[str] = ("msgpack", "compact"),
        batch_records: int = 64,
        admission: Callable[[], Admission] | None = None,
    ) -> None:
        if batch_records < 1:
            msg = f"batch_records must be at least 1, got {batch_records}"
            raise ValueError(msg)
        self.schemas = schemas
        self.codecs = tuple(codecs)
        self.batch_records = batch_records
        self.encoders = {
            c: Encoder(c, schemas, admission() if admission is not None else None)
            for c in self.codecs
        }
        self._rows: dict[str, SizeRow] = {}
        self._pending: dict[tuple[str, Any], list[dict[str, Any]]] = {}

    def add(self, record: dict[str, Any]) -> None:
        """Count one record (its ``_raw_bytes`` / ``_events`` give the raw bytes)."""
        label = record_label(record)
        row = self._rows.get(label)
        if row is None:
            row = self._rows[label] = SizeRow(label, codecs=dict.fromkeys(self.codecs, 0))
        row.records += 1
        row.raw += record_raw_bytes(record)
        row.json += len(dumps_record(record))
        device = record.get("device")
        key = (label, device if isinstance(device, str) else None)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = []
        pending.append(record)
        if len(pending) >= self.batch_records:
            self._flush(key)

    def add_many(self, records: Iterable[dict[str, Any]]) -> None:
        """Count every record of ``records``."""
        for rec in records:
            self.add(rec)

    def _flush(self, key: tuple[str, Any]) -> None:
        pending = self._pending.pop(key)
        row = self._rows[key[0]]
        for c, enc in self.encoders.items():
            row.codecs[c] += len(enc.encode_batch(pending))

    def flush(self) -> None:
        """Encode the partial batches still pending (reports call it; adding may go on after)."""
        for key in list(self._pending):
            self._flush(key)

    def size_rows(self) -> list[SizeRow]:
        """Return one :class:`SizeRow` per record type (sorted by label), then the total."""
        self.flush()
        rows = [self._rows[k] for k in sorted(self._rows)]
        total = SizeRow("total", codecs=dict.fromkeys(self.codecs, 0))
        for r in rows:
            total.records += r.records
            total.raw += r.raw
            total.json += r.json
            for c, n in r.codecs.items():
                total.codecs[c] += n
        return [*rows, total]

    def columns(self) -> list[str]:
        """Return the headers of :meth:`rows`."""
        return [
            "record type",
            "records",
            "raw B",
            "JSON B",
            *(f"{c} B" for c in self.codecs),
            "B/rec",
        ]

    def rows(self, *, short: bool = False) -> list[list[str]]:
        """Return the formatted cells: bytes, then their change against the raw bytes.

        ``B/rec`` is the last codec's bytes per record. ``short`` writes ``14.6k`` for 14,596
        and puts the change on a second line (the table on an 80-column terminal).
        """
        num = _short if short else _long
        sep = "\n" if short else " "
        out = []
        for r in self.size_rows():
            cells = [
                r.label,
                num(r.records),
                num(r.raw) if r.raw else "-",
                _cell(r, r.json, num, sep),
            ]
            cells += [_cell(r, r.codecs[c], num, sep) for c in self.codecs]
            last = r.codecs[self.codecs[-1]] if self.codecs else r.json
            cells.append(f"{last / r.records:.1f}" if r.records else "-")
            out.append(cells)
        return out

    def table(self, title: str = "bytes per record type (change against the raw events)") -> Any:
        """Return the report as a ``rich.table.Table`` (exact figures: :meth:`as_dict`)."""
        from rich.table import Table  # the core stays importable without rich loaded

        t = Table(title=title)
        for i, col in enumerate(self.columns()):
            t.add_column(col, justify="left" if i == 0 else "right", overflow="fold")
        for cells in self.rows(short=True):
            t.add_row(*cells)
        return t

    def as_dict(self) -> dict[str, Any]:
        """Return every figure, JSON-ready (for ``--json``)."""
        rows = self.size_rows()
        return {
            "codecs": list(self.codecs),
            "batch_records": self.batch_records,
            "types": {r.label: r.as_dict() for r in rows[:-1]},
            "total": rows[-1].as_dict(),
            "fallback_records": {c: e.stats["fallback"] for c, e in self.encoders.items()},
        }


def _long(n: int) -> str:
    return f"{n:,}"


def _short(n: int) -> str:
    for unit, size in (("G", 10**9), ("M", 10**6), ("k", 10**4)):
        if n >= size:
            v = n / (1000 if unit == "k" else size)
            return f"{v:.3g}{unit}" if v < 1000 else f"{v:,.0f}{unit}"
    return f"{n:,}"


def _cell(row: SizeRow, nbytes: int, num: Callable[[int], str], sep: str) -> str:
    red = row.reduction(nbytes)
    return num(nbytes) if red is None else f"{num(nbytes)}{sep}{-red:+.1f}%"
