"""One self-contained HTML page from a :class:`ReportCollector` and a replay summary.

Everything is inline (CSS, SVG plots); the page loads nothing, runs no script, and opens from a
file with no network. Every value that comes from the data is HTML-escaped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from streamfeat.report._collect import ReportCollector
from streamfeat.report._plots import Plotter

__all__ = ["render_report", "write_report"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d9dde3;padding-bottom:4px}
h3{font-size:14px;margin:16px 0 6px}
.sub{color:#5b6472;margin:0 0 16px}
figure.plot{background:#fff;border:1px solid #e1e4e8;border-radius:6px;margin:8px 0 16px;padding:8px}
figure.plot svg{width:100%;height:auto;display:block}
figcaption{font-size:12px;color:#5b6472;margin:2px 4px 6px}
table{border-collapse:collapse;background:#fff;margin:6px 0 14px;font-size:13px}
th,td{border:1px solid #e1e4e8;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#eef0f3}td.l,th.l{text-align:left}
code,pre{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
pre{white-space:pre-wrap;word-break:break-all;margin:0}
.empty{color:#5b6472;font-style:italic}
nav a{margin-right:12px}
"""


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _num(x: object, digits: int = 1) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return _e(x)


def _table(headers: list[str], rows: list[list[str]], left: frozenset[int] = frozenset({0})) -> str:
    """``rows`` cells are already HTML; the columns in ``left`` are left-aligned (text)."""
    head = "".join(
        f'<th class="{"l" if i in left else ""}">{_e(h)}</th>' for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"l" if i in left else ""}">{c}</td>' for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class _Page:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.plots: list[str] = []
        self.toc: list[tuple[str, str]] = []

    def section(self, anchor: str, title: str) -> None:
        self.toc.append((anchor, title))
        self.parts.append(f'<h2 id="{anchor}">{_e(title)}</h2>')

    def plot(self, name: str, caption: str, svg: str) -> None:
        self.plots.append(name)
        self.parts.append(
            f'<figure class="plot" data-plot="{_e(name)}"><figcaption>{_e(caption)}</figcaption>{svg}</figure>'
        )

    def add(self, fragment: str) -> None:
        self.parts.append(fragment)

    def empty(self, text: str) -> None:
        self.parts.append(f'<p class="empty">{_e(text)}</p>')


def render_report(
    collector: ReportCollector,
    summary: Mapping[str, Any] | None = None,
    *,
    title: str = "Replay report",
) -> str:
    """Return the report as one HTML document (a string).

    Args:
        collector: what the replay saw.
        summary: the replay summary (``ReplaySummary.as_dict()``, the ``--json`` output); its
            ``sizes`` entry, when present, gives the size table.
        title: the page title.

    Raises:
        MissingExtraError: matplotlib is not installed.
    """
    summary = dict(summary or {})
    plot = Plotter()
    c = collector
    page = _Page()

    page.section("overview", "Overview")
    overview = [
        ["events", _num(summary.get("events", c.events))],
        ["devices", _num(summary.get("devices"))],
        ["quarantined input", _num(summary.get("quarantined", sum(c.quarantine.values())))],
        ["records", _num(sum(c.records_by_kind.values()))],
        *([f"&nbsp;&nbsp;{_e(k)}", _num(v)] for k, v in sorted(c.records_by_kind.items())),
        ["replay seconds", _num(summary.get("seconds"), 3)],
        ["events / s (whole replay)", _num(summary.get("events_per_s"))],
    ]
    page.add(_table(["", "value"], overview))

    page.section("throughput", "Events per second over the replay")
    if len(c.progress_samples) >= 2:
        page.plot("throughput", "Replay throughput: events processed per second of wall time, between progress samples.",
                  plot.throughput(c.progress_samples))  # fmt: skip
    else:
        page.empty("The replay was too short for two progress samples.")
    if c.events_by_minute:
        page.plot("events-event-time", "Input events over event time (the log's own clock).",
                  plot.over_event_time({"events": c.events_by_minute}, "events"))  # fmt: skip
    else:
        page.empty("No valid events.")

    page.section("records", "Records by kind over event time")
    if c.kind_by_minute:
        page.plot("records-by-kind",
                  "Records per kind, by their event time: feature ts, window end, trigger last_ts, "
                  "late ts, task ts (quarantine records have none).",
                  plot.over_event_time(dict(c.kind_by_minute), "records"))  # fmt: skip
    else:
        page.empty("No records with an event time.")

    page.section("windows", "Windows")
    if not c.windows:
        page.empty("The tasks file has no windows, or none closed.")
    for name, st in sorted(c.windows.items()):
        page.add(f"<h3>{_e(name)}</h3><p>{st.records:,} windows, {st.final:,} closed at the end "
                 f"of the replay (final), {st.records - st.final:,} by the watermark.</p>")  # fmt: skip
        panels: list[tuple[str, list[float], bool]] = []
        if st.durations is not None and st.durations.values:
            panels.append(("size: end - start (s)", [v / 1000 for v in st.durations.values], True))
        panels += [(f"values.{k}", r.values, True) for k, r in sorted(st.aggregates.items())]
        if panels:
            page.plot(f"window-{name}", f"Window {name}: its size and each numeric aggregate "
                      "(lists such as top K are not plotted).", plot.histograms(panels))  # fmt: skip

    page.section("features", "Feature values")
    if not c.features:
        page.empty("No feature records.")
    for name, series in sorted(c.features.items()):
        panels = [
            (k, r.values, k in ("dwell_ms", "exposure_ms")) for k, r in sorted(series.items())
        ]
        if panels:
            page.add(f"<h3>{_e(name)} ({c.feature_records[name]:,} records)</h3>")
            page.plot(
                f"feature-{name}", f"Feature {name}: value distributions.", plot.histograms(panels)
            )

    page.section("late", "Late records and quarantine")
    if c.late:
        page.plot("late", "Late records per window.", plot.bars(dict(c.late), "late records"))
        for name, examples in sorted(c.late_examples.items()):
            page.add(f"<h3>late in {_e(name)}: examples</h3>")
            page.add(
                _table(
                    ["device", "ts"], [[_e(r.get("device")), _ts(r.get("ts"))] for r in examples]
                )
            )
    else:
        page.empty("No late records.")
    if c.quarantine:
        page.plot("quarantine", "Quarantined input by reason (line numbers and quoted values folded).",
                  plot.bars(dict(c.quarantine), "quarantined"))  # fmt: skip
        rows = []
        for reason, examples in sorted(
            c.quarantine_examples.items(), key=lambda kv: -c.quarantine[kv[0]]
        ):
            for r in examples:
                rows.append(
                    [
                        _e(reason),
                        _num(c.quarantine[reason]),
                        _num(r.get("line")),
                        f"<pre>{_e(r.get('reason'))}</pre>",
                    ]
                )
        page.add(_table(["reason", "count", "line", "example"], rows, left=frozenset({0, 3})))
    else:
        page.empty("No quarantined input.")

    page.section("triggers", "Trigger firings")
    if c.triggers:
        page.plot("triggers", "Firings per trigger.", plot.bars(dict(c.triggers), "firings"))
    else:
        page.empty("No trigger fired.")
    if c.tasks:
        page.add(
            _table(["task", "records"], [[_e(k), _num(v)] for k, v in sorted(c.tasks.items())])
        )

    page.section("sizes", "Sizes")
    sizes = summary.get("sizes")
    if isinstance(sizes, Mapping) and sizes.get("types"):
        _sizes(page, plot, sizes)
    else:
        page.empty("No size figures (the replay ran without sizes).")

    nav = " ".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in page.toc)
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    # raw text inside <script>: entities are not decoded there, so only "</" must not appear
    data = orjson.dumps({"plots": page.plots}).decode().replace("</", "<\\/")
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_CSS}</style></head><body><main>"
        f'<h1>{_e(title)}</h1><p class="sub">streamfeat replay report, written {made}. '
        "Self-contained: no network needed.</p>"
        f"<nav>{nav}</nav>{''.join(page.parts)}"
        f'<script type="application/json" id="report-index">{data}</script>'
        "</main></body></html>\n"
    )


def _ts(t: object) -> str:
    if type(t) is not int:
        return _e(t)
    when = datetime.fromtimestamp(t / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return f"{t} <small>({when})</small>"


def _sizes(page: _Page, plot: Plotter, sizes: Mapping[str, Any]) -> None:
    codecs = list(sizes.get("codecs", []))
    headers = ["record type", "records", "raw bytes", "json", *codecs, *(f"{k} B/record" for k in codecs),
               *(f"{k} vs raw" for k in codecs)]  # fmt: skip
    rows = []
    per_record: dict[str, dict[str, float]] = {}
    types = dict(sizes["types"])
    for label, t in [*types.items(), ("total", sizes.get("total", {}))]:
        cb = t.get("codec_bytes", {})
        bpr = t.get("bytes_per_record", {})
        red = t.get("reduction_pct", {})
        rows.append([
            _e(label), _num(t.get("records")), _num(t.get("raw_bytes") or None), _num(t.get("json_bytes")),
            *(_num(cb.get(k)) for k in codecs), *(_num(bpr.get(k)) for k in codecs),
            *((_num(red.get(k)) + " %" if red.get(k) is not None else "-") for k in codecs),
        ])  # fmt: skip
        if label != "total":
            per_record[label] = {k: float(v) for k, v in bpr.items() if v}
    page.add(_table(headers, rows))
    page.add(f"<p>Batches of {_e(sizes.get('batch_records'))} records of one type and one device; "
             "'vs raw' is 1 - bytes / raw event bytes.</p>")  # fmt: skip
    if per_record:
        page.plot("sizes", "Bytes per record by record type and encoding (log scale).",
                  plot.grouped_bars(per_record, "bytes / record"))  # fmt: skip


def write_report(path: str | Path, collector: ReportCollector, summary: Mapping[str, Any] | None = None,
                 *, title: str = "Replay report") -> Path:  # fmt: skip
    """Render the report and write it to ``path`` (UTF-8); return the path."""
    text = render_report(collector, summary, title=title)
    p = Path(path)
    p.write_text(text, encoding="utf-8")
    return p
