"""``streamfeat simulate``: a fleet of agents against an endpoint, with live progress and a report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table

from streamfeat.sim._simulation import SimOptions, SimReport, Simulation

__all__ = ["add_parsers", "progress_view", "render_report", "run_with_progress"]


def add_parsers(sub: Any) -> None:
    """Add ``simulate`` to the ``streamfeat`` command line."""
    p = sub.add_parser(
        "simulate", help="run a fleet of simulated devices against an endpoint, with an audit",
        description="Start an endpoint on 127.0.0.1 (or use --server) and N agents fed by the "
        "behaviour generator in accelerated event time, spread over processes; show progress; "
        "print a report with upload latency and an end-to-end audit (exit code 1 if anything "
        "queued was lost or stored twice).",
    )  # fmt: skip
    p.add_argument(
        "--devices", type=int, default=100, metavar="N", help="devices (default: %(default)s)"
    )
    p.add_argument(
        "--minutes",
        type=float,
        default=5.0,
        metavar="M",
        help="simulated minutes (default: %(default)s)",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=10.0,
        metavar="X",
        help="event time runs X times real time; 0 = as fast as possible (default: %(default)s)",
    )
    p.add_argument("--tasks", metavar="FILE", help="tasks file (default: the embedded default)")
    p.add_argument(
        "--server",
        metavar="URL",
        help="use this endpoint (ws://HOST:PORT/v1/tunnel) instead of starting one",
    )
    p.add_argument(
        "--server-db",
        metavar="PATH|URL",
        help="the --server's database (devices are registered there): an SQLite file or a "
        "postgresql:// URL",
    )
    p.add_argument(
        "--server-key",
        type=Path,
        metavar="FILE",
        help="the --server's key file (default: endpoint.key beside an SQLite --server-db)",
    )
    p.add_argument(
        "--server-pids",
        type=Path,
        metavar="FILE",
        help="the --server's pid file (serve --workers N --pid-file FILE): --chaos then kills "
        "one of its worker processes now and then",
    )
    p.add_argument(
        "--processes",
        type=int,
        default=0,
        metavar="P",
        help="fleet processes (default: one per core)",
    )
    p.add_argument(
        "--chaos", action="store_true", help="restart the endpoint and cut connections at random"
    )
    p.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    p.add_argument(
        "--reconfigure",
        action="append",
        default=[],
        metavar="MINUTE:FILE",
        help="push tasks FILE to every device at simulated MINUTE (repeatable)",
    )
    p.add_argument(
        "--workdir", type=Path, help="keep stores, keys, logs and the endpoint database here"
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds to wait at the end for uploads (default: %(default)s)",
    )
    p.add_argument(
        "--release",
        metavar="P@S,...",
        help="a staged release while the fleet runs: raise the rollout to P percent S seconds "
        "after feeding began (e.g. 10@2,50@8,100@15); the report gives its coverage",
    )
    p.add_argument(
        "--release-bundle-mb",
        type=float,
        default=1.0,
        metavar="MB",
        help="model bytes in the released bundle (default: %(default)s)",
    )
    p.add_argument(
        "--release-broken",
        action="store_true",
        help="release a bundle whose task raises on every click: it must roll back by itself",
    )
    p.add_argument(
        "--ranking",
        metavar="MODE",
        help="a served feed whose users respond to the order they see; MODE: server (no "
        "re-rank), heuristic, model:FILE (an ONNX re-rank model) or oracle (the ceiling: the "
        "order by the user's true current interests); reports CTR and, for a non-server mode, "
        "its CTR ratio over the server's order on the same seeds (docs/loop.md)",
    )
    p.add_argument(
        "--rerank-policy",
        choices=("edgerec", "swipe", "kuaishou"),
        default="edgerec",
        help="when the served feed's re-rank task fires: edgerec (a click, a delete, 5 "
        "exposures without a click; default), swipe (a click, a delete, every exposure) or "
        "kuaishou (every exposure; docs/loop.md)",
    )
    p.add_argument(
        "--compare",
        metavar="A,B,...",
        help="run these ranking modes back to back on the same seeds and print them side by "
        "side, with each one's CTR ratio over the first (e.g. server,heuristic,model:m.onnx)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_simulate)


def options_from_args(args: argparse.Namespace) -> SimOptions:
    """Build :class:`SimOptions` from parsed arguments (usage errors through the parser)."""
    from streamfeat.errors import ConfigError
    from streamfeat.tasks import load_tasks

    tasks_text = ""
    texts = []
    try:
        if args.tasks:
            tasks_text = load_tasks(args.tasks).text  # refuses a file that is not UTF-8, too
        for spec in args.reconfigure:
            minute, _, file = spec.partition(":")
            texts.append((float(minute), load_tasks(file).text))
    except (OSError, ValueError, ConfigError) as exc:
        args.parser.error(str(exc))
    if args.devices < 1 or args.minutes <= 0 or args.speed < 0:
        args.parser.error("--devices must be >= 1, --minutes > 0 and --speed >= 0")
    release = None
    if args.release:
        from streamfeat.sim._release import parse_release_spec

        try:
            release = parse_release_spec(
                args.release, bundle_mb=args.release_bundle_mb, broken=args.release_broken
            )
        except ValueError as exc:
            args.parser.error(str(exc))
    if args.server and not args.server_db:
        args.parser.error(
            "--server needs --server-db (the registry the simulated devices are added to)"
        )
    if args.server_pids and not args.server:
        args.parser.error("--server-pids goes with --server")
    if (
        args.server_db
        and args.server_db.startswith(("postgresql://", "postgres://"))
        and not args.server_key
    ):
        args.parser.error("a postgresql:// --server-db needs --server-key")
    ranking = _ranking_args(args)
    return SimOptions(
        ranking=ranking, rerank_policy=args.rerank_policy,
        devices=args.devices, minutes=args.minutes, speed=args.speed, tasks_text=tasks_text,
        server=args.server, server_db=args.server_db, server_key=args.server_key,
        server_pids=args.server_pids,
        processes=args.processes, chaos=args.chaos, seed=args.seed, reconfigure=tuple(texts),
        workdir=args.workdir, drain_timeout=args.drain_timeout, release=release,
    )  # fmt: skip


def _ranking_args(args: argparse.Namespace) -> str:
    from streamfeat.sim._served import parse_mode

    ranking: str | None = getattr(args, "ranking", None)
    compare: str | None = getattr(args, "compare", None)
    if not ranking and not compare:
        return ""
    if ranking and compare:
        args.parser.error("give --ranking or --compare, not both")
    if args.tasks or args.chaos or args.reconfigure or args.release:
        args.parser.error(
            "--ranking / --compare build their own tasks file and run without --tasks, "
            "--chaos, --reconfigure and --release"
        )
    modes = [m.strip() for m in (compare or ranking or "").split(",")]
    if compare and (len(modes) < 2 or len(set(modes)) != len(modes)):
        args.parser.error("--compare needs two or more different modes, e.g. server,heuristic")
    for m in modes:
        try:
            parse_mode(m)
        except ValueError as exc:
            args.parser.error(str(exc))
    args.modes = modes
    first: str = modes[0]
    return first


def _simulate(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    console = Console(stderr=args.json)
    if getattr(args, "compare", None):
        return _compare(args, options, console)
    report = run_with_progress(options, console)
    if args.json:
        print(json.dumps(report.as_dict(), sort_keys=True))
    else:
        console.print()
        render_report(report, console)
        if report.ranking:
            from streamfeat.sim._ranking_report import render_ranking

            render_ranking(report, console)
    return 0 if report.ok else 1


def _compare(args: argparse.Namespace, options: SimOptions, console: Console) -> int:
    from streamfeat.sim._ranking_report import compare_json, render_compare, run_compare

    def run(opts: SimOptions) -> SimReport:
        console.print(f"ranking mode {opts.ranking}:")
        return run_with_progress(opts, console)

    reports, ratios = run_compare(options, args.modes, run)
    if args.json:
        print(json.dumps(compare_json(reports, ratios), sort_keys=True))
    else:
        console.print()
        render_compare(reports, ratios, console)
    return 0 if all(r.ok for r in reports) else 1


def run_with_progress(options: SimOptions, console: Console) -> SimReport:
    """Run a simulation showing :func:`progress_view` live; return the report."""
    import asyncio

    with Live(progress_view({}), console=console, refresh_per_second=4, transient=False) as live:
        sim = Simulation(options, lambda snap: live.update(progress_view(snap)))
        return asyncio.run(sim.run())


def progress_view(p: dict[str, Any]) -> Panel:
    """Render one progress snapshot of a simulation."""
    minutes = p.get("minutes", 0) or 1
    done = min(1.0, p.get("sim_minutes", 0.0) / minutes)
    t = Table.grid(padding=(0, 2))
    for _ in range(3):
        t.add_column(justify="right", style="dim")
        t.add_column(justify="left", style="bold")
    versions = ", ".join(
        f"{k}: {v}" for k, v in sorted(p.items()) if k[:1] == "v" and k[1:].isdigit()
    )
    t.add_row(
        "events",
        f"{p.get('events', 0):,}",
        "triggers",
        f"{p.get('triggers', 0):,}",
        "tasks run",
        f"{p.get('tasks', 0):,}",
    )
    t.add_row(
        "features",
        f"{p.get('features', 0):,}",
        "windows",
        f"{p.get('windows', 0):,}",
        "payloads",
        f"{p.get('payloads', 0):,}",
    )
    t.add_row(
        "acked",
        f"{p.get('acked', 0):,}",
        "connected",
        f"{p.get('connected', 0):,}/{p.get('devices', 0):,}",
        "reconnects",
        f"{p.get('reconnects', 0):,}",
    )
    t.add_row(
        "restarts",
        str(p.get("restarts", 0)),
        "cuts",
        str(p.get("cuts", 0)),
        "tasks files",
        versions or "-",
    )
    title = (f"{p.get('phase', 'starting')}: {p.get('sim_minutes', 0.0):.1f} / {minutes:g} simulated min, "
             f"{max(0.0, p.get('elapsed', 0.0)):.1f} s")  # fmt: skip
    bar = (
        Table.grid()
    )  # a grid row ends the bar's line (a bare ProgressBar shares it with the next)
    bar.add_row(ProgressBar(total=1.0, completed=done, width=60))
    return Panel(Group(bar, t), title=title, expand=False)


def render_report(r: SimReport, console: Console) -> None:
    """Print the final report of a simulation, audit last."""
    t = Table(title=f"fleet: {r.devices:,} devices x {r.minutes:g} min at {r.speed:g}x, {r.processes} processes",
              show_header=False, title_justify="left")  # fmt: skip
    t.add_column(style="dim")
    t.add_column(justify="right")
    recs = r.records
    rows: list[tuple[str, str]] = [
        ("events", f"{r.events:,}  ({r.quarantined:,} quarantined)"),
        ("triggers fired", f"{recs.get('trigger', 0):,}"),
        ("tasks run", f"{r.tasks_run:,}  ({recs.get('task', 0):,} task records)"),
        (
            "re-ranks applied / fired",
            f"{r.reranks.get('applied', 0):,} / {r.reranks.get('fired', 0):,}  (timeouts "
            f"{r.reranks.get('timeouts', 0):,}, errors {r.reranks.get('errors', 0):,}, stale "
            f"{r.reranks.get('stale', 0):,}, coalesced {r.reranks.get('coalesced', 0):,})",
        ),
        ("re-rank latency p50/p90/p99 (ms)", _q(r.rerank_ms, "re-ranks")),
        ("features", f"{recs.get('feature', 0):,}"),
        ("windows closed", f"{recs.get('window', 0):,}  ({recs.get('late', 0):,} late)"),
        ("payloads / batches stored", f"{r.payloads:,} / {r.batches_stored:,}"),
        ("bytes: raw events", f"{r.raw_bytes:,}"),
        ("bytes: uploaded records as JSON", f"{r.json_bytes:,}"),
        (
            "bytes: uploaded (encoded)",
            f"{r.payload_bytes:,}  ({r.raw_bytes / max(1, r.payload_bytes):.1f}x smaller than raw)",
        ),
        ("upload latency p50/p90/p99 (ms)", _q(r.latency_ms)),
        ("  while feeding", _q(r.steady_latency_ms)),
        (
            "record age at ack p50/p99 (ms)",
            f"{r.age_ms.get('p50', 0):,.0f} / {r.age_ms.get('p99', 0):,.0f}",
        ),
        (
            "endpoint restarts / cuts / reconnects",
            f"{r.endpoint_restarts} / {r.connections_cut} / {r.reconnects:,}",
        ),
        ("tasks files pushed / devices by version", f"{r.configs_pushed} / {r.versions}"),
        (
            "wall time (feeding)",
            f"{r.wall_s:.1f} s ({r.feed_wall_s:.1f} s), CPU {r.cpu_s:.1f} s"
            f" (endpoint {r.endpoint_cpu_s:.1f} s)",
        ),
    ]
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)
    style = "bold green" if r.ok else "bold red"
    console.print(
        f"[{style}]audit: {r.queued:,} records queued, {r.stored:,} stored at the endpoint: "
        f"lost {r.lost}, doubled {r.doubled}, undecodable {r.undecodable}[/]"
    )
    if r.missing:
        worst = sorted(r.missing.items(), key=lambda kv: -kv[1])[:10]
        console.print(
            "missing by device: "
            + ", ".join(f"{d}: {n}" for d, n in worst)
            + f"; still in outboxes: {r.waiting}"
        )
    if r.release:
        render_release(r.release, console)
    if r.workdir:
        console.print(f"stores, keys and logs kept in {r.workdir}")


def render_release(rel: dict[str, Any], console: Console) -> None:
    """The ``--release`` part of the report: stages, coverage, bytes, outcome."""

    def s(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f} s"

    t = Table(title=f"release: bundle {rel['bundle_bytes']:,} B" + (" (broken)" if rel["broken"] else ""),
              title_justify="left")  # fmt: skip
    for col in ("stage", "devices", "live", "to 50%", "to 90%", "to 100%"):
        t.add_column(col, justify="right")
    for st in rel["stages"]:
        t.add_row(f"{st['percent']:g}% at {st['at_s']:g} s", f"{st['devices']:,}", f"{st['live']:,}",
                  s(st["to_50_s"]), s(st["to_90_s"]), s(st["to_100_s"]))  # fmt: skip
    console.print(t)
    console.print(
        f"release {rel['state']}; devices by status {rel['statuses']}; "
        f"pulled {rel['pulled_bytes_per_device']:,} B per device"
        + (f"; rolled back: {rel['rollback']}" if rel["rollback"] else "")
    )


def _q(q: dict[str, float], what: str = "batches") -> str:
    if not q.get("n"):
        return "-"
    return f"{q['p50']:,.1f} / {q['p90']:,.1f} / {q['p99']:,.1f}  ({q['n']:,} {what})"
