"""The ``--cluster`` half of ``streamfeat replay``: options, progress bar and summary."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["add_cluster_options", "run_cluster_command"]


def add_cluster_options(p: argparse.ArgumentParser) -> None:
    """Add ``--cluster``, ``--partitions`` and ``--ordered`` to the replay parser."""
    g = p.add_argument_group("cluster (pip install 'streamfeat[cluster]')")
    g.add_argument(
        "--cluster",
        metavar="local:N|tcp://HOST:PORT",
        help="replay partitioned by device on Dask: a LocalCluster of N worker processes, or "
        "an existing scheduler (inputs and OUT on a filesystem every worker sees)",
    )
    g.add_argument(
        "--partitions",
        type=int,
        metavar="P",
        help="with --cluster, device partitions (default: the number of workers)",
    )
    g.add_argument(
        "--ordered",
        action="store_true",
        help="with --cluster, write OUT in single-process order (byte-identical; a merge at the end)",
    )


def run_cluster_command(
    args: argparse.Namespace, config: Any, console: Any, render: Callable[[Any, Any], None]
) -> int:
    """Run ``streamfeat replay EVENTS... --cluster SPEC`` from parsed arguments.

    Args:
        args: the parsed replay arguments.
        config: the loaded tasks file.
        console: where the progress bar and the summary go.
        render: prints a replay summary (the single-process replay's tables).
    """
    import orjson

    from streamfeat.errors import ConfigError, StorageError
    from streamfeat.replay._cluster import (
        ClusterReplayOptions,
        expand_inputs,
        parse_cluster,
        run_cluster_replay,
    )

    try:
        parse_cluster(args.cluster)
    except ValueError as exc:
        args.parser.error(str(exc))
    for flag, bad in (
        ("--speed", args.speed is not None),
        ("--sizes", args.sizes),
        ("--report", bool(getattr(args, "report", None))),
        ("--run-tasks", bool(getattr(args, "run_tasks", False))),
    ):
        if bad:  # said, never silently ignored
            args.parser.error(f"{flag} is not supported with --cluster")
    if args.partitions is not None and args.partitions < 1:
        args.parser.error("--partitions must be at least 1")
    if args.db is not None and Path(args.db).is_file():
        args.parser.error(
            "with --cluster, --db is a directory (one checkpoint store per partition)"
        )
    try:
        inputs = expand_inputs(list(args.events), args.format)
    except ConfigError as exc:
        args.parser.error(str(exc))
    opts = ClusterReplayOptions(
        events=inputs,
        config=config,
        out=args.out,
        cluster=args.cluster,
        partitions=args.partitions,
        ordered=args.ordered,
        db=args.db,
        checkpoint_every=args.checkpoint_every,
        restart=args.restart,
        fmt=args.format,
    )
    show_bar = console.is_terminal and not args.no_progress and not args.json
    try:
        summary = _with_progress(opts, console) if show_bar else run_cluster_replay(opts)
    except (StorageError, ConfigError) as exc:
        print(f"streamfeat replay: {exc}", file=sys.stderr)
        return 2
    if args.json:
        stream = sys.stderr if args.out == "-" else sys.stdout  # OUT may be standard output
        stream.write(orjson.dumps(summary.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        render(summary, console)
        c = summary.as_dict()["cluster"]
        console.print(
            f"cluster: {c['partitions']} partitions on {c['workers']} workers; "
            f"partition seconds {c['partition_seconds']}; stage times are summed over partitions"
        )
    return 0


def _with_progress(opts: Any, console: Any) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from streamfeat.replay._cluster import run_cluster_replay

    columns = (
        TextColumn("replaying on the cluster (lines read by all partitions)"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("replay", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        return run_cluster_replay(opts, progress=progress)
