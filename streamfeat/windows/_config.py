"""One ``[windows.NAME]`` table of a tasks file: :class:`WindowConfig` and its parser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from streamfeat._tokens import Token, parse_token
from streamfeat.windows._spec import AggSpec, AssignSpec, parse_aggregate, parse_assign, parse_field

if TYPE_CHECKING:
    from streamfeat._tables import TableReader

__all__ = ["WindowConfig", "parse_window"]

_KEYS = ("assign", "key", "filter", "lateness", "aggregate")


@dataclass(frozen=True, slots=True)
class WindowConfig:
    """One ``[windows.NAME]`` table."""

    name: str
    assign: AssignSpec
    key: tuple[str, ...] = ("device",)
    filter: tuple[Token, ...] | None = None
    lateness: int | None = None  # None: the engine's
    aggregates: tuple[tuple[str, AggSpec], ...] = ()


def parse_window(name: str, table: object, reader: TableReader) -> WindowConfig:
    """Validate the table of window ``name``.

    Raises:
        ConfigError: from ``reader``, naming the file, the dotted key and the reason.
    """
    base = f"windows.{reader.name(f'windows.{name}', name)}"
    if not isinstance(table, dict):
        raise reader.fail(base, "must be a table")
    for k in table:
        if k not in _KEYS:
            raise reader.fail(f"{base}.{k}", f"is not a known key (known: {', '.join(_KEYS)})")
    if "assign" not in table:
        raise reader.fail(f"{base}.assign", "is required")
    try:
        assign = parse_assign(table["assign"])
    except ValueError as exc:
        raise reader.fail(f"{base}.assign", str(exc)) from exc
    key = _key(base, table.get("key", "device"), reader)
    filt = None
    if "filter" in table:
        try:
            filt = tuple(parse_token(x) for x in reader.strings(f"{base}.filter", table["filter"]))
        except ValueError as exc:
            raise reader.fail(f"{base}.filter", str(exc)) from exc
    lateness = None
    if "lateness" in table:
        lateness = reader.duration(f"{base}.lateness", table["lateness"])
    aggregates = _aggregates(base, table.get("aggregate", {"n": "count"}), reader)
    return WindowConfig(name, assign, key, filt, lateness, aggregates)


def _key(base: str, text: object, reader: TableReader) -> tuple[str, ...]:
    if not isinstance(text, str):
        raise reader.fail(f"{base}.key", f"must be a string, got {text!r}")
    try:
        return tuple(parse_field(p.strip()) for p in text.split(","))
    except ValueError as exc:
        raise reader.fail(f"{base}.key", str(exc)) from exc


def _aggregates(base: str, aggs: object, reader: TableReader) -> tuple[tuple[str, AggSpec], ...]:
    if not isinstance(aggs, dict) or not aggs:
        raise reader.fail(f"{base}.aggregate", "must be a non-empty table of name = aggregate")
    parsed = []
    for out_name, text in aggs.items():
        try:
            parsed.append((out_name, parse_aggregate(text)))
        except ValueError as exc:
            raise reader.fail(f"{base}.aggregate.{out_name}", str(exc)) from exc
    return tuple(parsed)
