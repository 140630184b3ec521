"""``streamfeat replay``: replay a recorded log through a tasks file (SPEC section 6)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from streamfeat.data import default_tasks_text
from streamfeat.errors import ConfigError, InputError, OutputError, StorageError
from streamfeat.replay._cluster_cli import add_cluster_options, run_cluster_command
from streamfeat.replay._replay import ReplayObserver, ReplayOptions, ReplaySummary, run_replay
from streamfeat.tasks import load_tasks, parse_tasks

__all__ = ["add_parsers", "render_summary"]


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "replay",
        help="replay a recorded event log through a tasks file",
        description="Replay EVENTS (JSONL, .gz, msgpack, or - for stdin) through a tasks file; "
        "write one JSON record per line to OUT and print a summary.",
    )
    p.add_argument(
        "events",
        metavar="EVENTS",
        nargs="+",
        help="JSONL (optionally .gz) or msgpack file, or -; with --cluster, one or more JSONL or "
        "msgpack files or globs, replayed as if concatenated",
    )
    p.add_argument(
        "--tasks", metavar="TASKS.toml", help="tasks file (default: the embedded default)"
    )
    p.add_argument(
        "--out", metavar="OUT.jsonl", required=True, help="output records (- for stdout)"
    )
    p.add_argument(
        "--db", metavar="STORE.sqlite", help="store: quarantine, checkpoints, resume after a crash"
    )
    p.add_argument(
        "--speed", type=float, metavar="X", help="replay in event time at X times real speed"
    )
    p.add_argument(
        "--sizes", action="store_true", help="report bytes raw / JSON / per codec per record type"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON (for scripts)")
    p.add_argument(
        "--report",
        metavar="REPORT.html",
        help="also write a self-contained HTML report with plots (implies --sizes; needs "
        "pip install 'streamfeat[report]')",
    )
    p.add_argument(
        "--format", choices=("jsonl", "msgpack"), help="input format (default: from the name)"
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=50_000,
        metavar="N",
        help="with --db, commit a checkpoint every N input lines (default: %(default)s)",
    )
    p.add_argument(
        "--restart", action="store_true", help="with --db, discard a previous checkpoint"
    )
    p.add_argument(
        "--run-tasks",
        action="store_true",
        help="run the [tasks] code on the trigger records, in event order, and write their "
        "task records to OUT",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    add_cluster_options(p)
    p.set_defaults(func=_replay)


def _replay(args: argparse.Namespace) -> int:
    if args.speed is not None and args.speed <= 0:
        args.parser.error("--speed must be greater than 0")
    if args.checkpoint_every < 1:
        args.parser.error("--checkpoint-every must be at least 1")
    try:  # a replay runs no re-rank: its models are declared, not loaded (no onnxruntime)
        config = (
            load_tasks(args.tasks, load_models=False)
            if args.tasks
            else parse_tasks(default_tasks_text(), source="<default tasks>", load_models=False)
        )
    except ConfigError as exc:
        print(f"streamfeat replay: {exc}", file=sys.stderr)
        return 2
    if args.cluster is not None:
        if config.engine.idle is not None:  # each partition sees only its devices' times
            print("note: [engine] idle is not applied by a --cluster replay", file=sys.stderr)
        return run_cluster_command(args, config, _console(args), render_summary)
    if args.ordered or args.partitions is not None:
        args.parser.error("--ordered and --partitions go with --cluster")
    if len(args.events) > 1:
        args.parser.error(
            "several EVENTS files need --cluster (or concatenate them: cat A B | ... -)"
        )
    args.events = args.events[0]
    if args.events != "-":
        from pathlib import Path

        if not Path(args.events).is_file():
            args.parser.error(f"EVENTS {args.events!r} is not a file")
    collector = None
    if args.report:
        from streamfeat.report import MissingExtraError, ReportCollector, check_plotting

        try:
            check_plotting()  # fail before the replay, not after it
        except MissingExtraError as exc:
            print(f"streamfeat replay: {exc}", file=sys.stderr)
            return 2
        collector = ReportCollector()
    opts = ReplayOptions(
        events=args.events,
        config=config,
        out=args.out,
        db=args.db,
        speed=args.speed,
        sizes=args.sizes or bool(args.report),
        checkpoint_every=args.checkpoint_every,
        fmt=args.format,
        restart=args.restart,
        run_tasks=args.run_tasks,
    )
    console = _console(args)
    show_bar = console.is_terminal and not args.no_progress and not args.json
    try:
        summary = (
            _with_progress(opts, console, collector)
            if show_bar
            else run_replay(opts, observer=collector)
        )
    except (StorageError, ConfigError) as exc:  # TaskLoadError (--run-tasks) is a ConfigError
        print(f"streamfeat replay: {exc}", file=sys.stderr)
        return 2
    except (InputError, OutputError) as exc:
        print(f"streamfeat replay: {exc}", file=sys.stderr)
        return 1
    if collector is not None:
        from streamfeat.report import write_report

        try:
            write_report(
                args.report, collector, summary.as_dict(), title=_report_title(args.events)
            )
        except OSError as exc:
            print(
                f"streamfeat replay: can't write the report {args.report}: {exc.strerror}",
                file=sys.stderr,
            )
            return 2
    if args.json:
        stream = sys.stderr if args.out == "-" else sys.stdout
        stream.write(orjson.dumps(summary.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        render_summary(summary, console)
    if summary.input_error:
        print(
            f"streamfeat replay: {args.events} could not be read to its end: "
            f"{summary.input_error}; the rest is quarantined",
            file=sys.stderr,
        )
        return 1
    return 0


def _console(args: argparse.Namespace) -> Console:
    # the summary goes where the records don't; off a terminal, tables get room instead of
    # rich's 80-column default so that no figure is cut
    console = Console(stderr=args.out == "-")
    if not console.is_terminal:
        console = Console(stderr=args.out == "-", width=200)
    return console


def _report_title(events: str) -> str:
    from pathlib import Path

    return "Replay of standard input" if events == "-" else f"Replay of {Path(events).name}"


def _with_progress(
    opts: ReplayOptions, console: Console, observer: ReplayObserver | None = None
) -> ReplaySummary:
    columns = (
        TextColumn("replaying"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("replay", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        return run_replay(opts, progress=progress, observer=observer)


def render_summary(summary: ReplaySummary, console: Console) -> None:
    """Print the replay summary as tables."""
    d = summary.as_dict()
    t = Table(title="replay summary", show_header=False)
    t.add_row("events", f"{d['events']:,}")
    t.add_row("quarantined", f"{d['quarantined']:,}")
    t.add_row("devices", f"{d['devices']:,}")
    t.add_row("time", f"{d['seconds']:.2f} s ({d['events_per_s']:,} events/s)")
    for name, st in d["stages"].items():
        rate = f"{st['events_per_s']:,} events/s" if st["events_per_s"] else "-"
        t.add_row(f"stage {name}", f"{st['seconds']:.2f} s (~{rate}, sampled)")
    for kind, n in d["records"].items():
        t.add_row(f"records {kind}", f"{n:,}")
    t.add_row("bytes raw (input)", f"{d['bytes']['raw']:,}")
    t.add_row("bytes records (JSON)", f"{d['bytes']['records']:,}")
    t.add_row("peak RSS", f"{d['peak_rss_mb']:.1f} MB")
    for name, counts in (d.get("tasks") or {}).items():
        t.add_row(f"task {name}", ", ".join(f"{k} {v:,}" for k, v in counts.items() if v))
    if d["resumed_at"]:
        t.add_row("resumed at input unit", f"{d['resumed_at']:,}")
    if summary.idled is not None:
        t.add_row("idle devices advanced", f"{summary.idled:,} (by the log time: engine idle)")
    console.print(t)
    if summary.size_table is not None:
        console.print(summary.size_table)
