"""``simulate --ranking`` / ``--compare``: running the modes back to back and printing them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rich.console import Console
from rich.table import Table

from streamfeat.sim._compare import paired_ratio
from streamfeat.sim._options import SimOptions, SimReport

__all__ = ["compare_json", "render_compare", "render_ranking", "run_compare"]


def run_compare(
    options: SimOptions, modes: list[str], run: Any
) -> tuple[list[SimReport], dict[str, dict[str, Any]]]:
    """Run ``modes`` one after the other on the same devices and seed (``run(options)`` runs
    one simulation and returns its report); return the reports and, per non-first mode, its
    CTR ratio over the first mode's run (paired bootstrap, 95%). With a ``workdir``, mode
    ``i`` keeps its run in ``workdir/i-NAME``."""
    reports = []
    for i, m in enumerate(modes):
        opts = replace(options, ranking=m)
        if options.workdir is not None:  # one endpoint database per mode
            opts = replace(opts, workdir=options.workdir / f"{i + 1}-{m.split(':', 1)[0]}")
        reports.append(run(opts))
    ratios: dict[str, dict[str, Any]] = {}
    base = reports[0]
    for m, r in zip(modes[1:], reports[1:], strict=True):
        ratios[m] = paired_ratio(base.served, r.served, seed=options.seed)
    return reports, ratios


def _ratio(r: dict[str, Any] | None) -> str:
    if not r:
        return "-"
    return f"{r['ratio']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"


def render_ranking(r: SimReport, console: Console) -> None:
    """The ``--ranking`` part of a report."""
    k = r.ranking
    if not k:
        return
    t = Table(title=f"served feed, ranking {k['mode']}", show_header=False, title_justify="left")
    t.add_column(style="dim")
    t.add_column(justify="right")
    for label, value in _rows(k):
        t.add_row(label, value)
    if "vs_server" in k:
        t.add_row("CTR of the server's order (same seeds)", f"{k['server_ctr']:.4f}")
        t.add_row("CTR ratio over server [95% CI]", _ratio(k["vs_server"]))
    console.print(t)
    if "vs_server" in k:
        console.print(f"[dim]CI: {k['vs_server']['method']}[/]")


def _rows(k: dict[str, Any]) -> list[tuple[str, str]]:
    q = k.get("rerank_ms") or {}
    lat = f"{q['p50']:.2f} / {q['p99']:.2f}" if q.get("n") else "-"
    return [
        ("devices", f"{k['devices']:,}"),
        ("sessions", f"{k['sessions']:,}"),
        ("pages served", f"{k['pages']:,}"),
        ("exposures", f"{k['exposures']:,}"),
        ("clicks", f"{k['clicks']:,}"),
        ("CTR", f"{k['ctr']:.4f}"),
        ("clicks per session", f"{k['clicks_per_session']:.3f}"),
        ("purchases", f"{k['purchases']:,}"),
        ("deletes", f"{k['deletes']:,}"),
        ("re-rank latency p50 / p99 (ms)", lat),
    ]


def render_compare(
    reports: list[SimReport], ratios: dict[str, dict[str, Any]], console: Console
) -> None:
    """The modes side by side; the ratio column is over the first mode."""
    first = reports[0].ranking["mode"]
    t = Table(title=f"served feed: {reports[0].devices:,} devices x {reports[0].minutes:g} min, same seeds",
              title_justify="left")  # fmt: skip
    t.add_column("")
    # without a server run among the modes, the server's column is the same users played
    # without a device (exactly what a server run gives: docs/loop.md)
    offline = first != "server" and "server" in reports[0].ranking
    columns = ([reports[0].ranking["server"] | {"rerank_ms": {}}] if offline else []) + [
        r.ranking for r in reports
    ]
    if offline:
        t.add_column("server (no device)", justify="right")
    for r in reports:
        t.add_column(r.ranking["mode"], justify="right")
    rows = [_rows(k) for k in columns]
    for i, (label, _) in enumerate(rows[0]):
        t.add_row(label, *(row[i][1] for row in rows))
    t.add_row("CTR ratio over server [95% CI]", *(["1"] if offline else []),
              *(_ratio(k.get("vs_server")) if k["mode"] != "server" else "1" for k in columns[offline:]))  # fmt: skip
    if len(reports) > 1 and first != "server":
        t.add_row(f"CTR ratio over {first} [95% CI]", *(["-"] if offline else []), "1",
                  *(_ratio(ratios.get(r.ranking["mode"])) for r in reports[1:]))  # fmt: skip
    t.add_row("wall time (s)", *(["-"] if offline else []), *(f"{r.wall_s:.1f}" for r in reports))
    console.print(t)
    if ratios:
        console.print(f"[dim]CI: {next(iter(ratios.values()))['method']}, paired by device[/]")


def compare_json(reports: list[SimReport], ratios: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``--compare --json`` document: ``ranking`` (one entry per mode, with ``vs_first``)
    and ``runs`` (each mode's whole report)."""
    ranking = []
    for r in reports:
        entry = dict(r.ranking)
        if r.ranking["mode"] in ratios:
            entry["vs_first"] = ratios[r.ranking["mode"]]
        ranking.append(entry)
    return {"ranking": ranking, "runs": [r.as_dict() for r in reports],
            "ok": all(r.ok for r in reports)}  # fmt: skip
