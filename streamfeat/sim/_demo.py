"""``streamfeat demo``: the whole mission, device to cloud: an endpoint and a fleet, under faults.

By default: an endpoint on 127.0.0.1 and 200 simulated devices running the embedded default
tasks file for 5 simulated minutes at 12x speed, with chaos (endpoint killed and restarted,
connections reset) and, at minute 3, a new tasks file pushed down the tunnel to every device
(a trigger and a window added, a window removed), applied live. Progress is shown while it runs;
the report ends with the audit: every record a device queued stored exactly once.

``--replay-only`` runs the earlier demo instead: generate a log and replay it with the default
tasks file (the replay summary with the size table).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from streamfeat.data import default_tasks_text
from streamfeat.errors import StreamfeatError
from streamfeat.replay._cli import render_summary
from streamfeat.replay._replay import ReplayOptions, run_replay
from streamfeat.tasks import parse_tasks

__all__ = ["add_parsers", "demo_update"]

_ADDED_TRIGGER = 'fav_then_cart = "favorite * add_cart within 10m"\n'
_ADDED_WINDOW = """
[windows.carts_1m]              # pushed live by the demo at minute 3
assign = "tumbling 1m"
filter = ["add_cart", "purchase"]
aggregate = { n = "count", items = "distinct item" }
"""


def demo_update(text: str) -> str:
    """Return the tasks file the demo pushes: ``text`` with a trigger and a window added and the
    ``category_views`` window removed."""
    out = text.replace("[triggers]\n", "[triggers]\n" + _ADDED_TRIGGER, 1)
    out = re.sub(r"\n\[windows\.category_views\]\n(?:(?!\n\[)[\s\S])*", "\n", out, count=1)
    return out + _ADDED_WINDOW


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run an endpoint and a fleet of 200 devices under faults, with a live config push",
        description="Run the whole pipeline, device to cloud: an endpoint and simulated devices "
        "(default tasks file), chaos on, a tasks file pushed live at minute 3, live progress, and "
        "the report with the end-to-end audit. --replay-only runs the generate + replay demo.",
    )
    p.add_argument("--devices", type=int, default=200, help="devices (default: %(default)s)")
    p.add_argument(
        "--minutes", type=float, default=5, help="simulated minutes (default: %(default)s)"
    )
    p.add_argument("--speed", type=float, default=12, help="times real time (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    p.add_argument(
        "--no-chaos",
        dest="chaos",
        action="store_false",
        help="no endpoint restarts or cut connections",
    )
    p.add_argument(
        "--push-at",
        type=float,
        default=3.0,
        metavar="MINUTE",
        help="simulated minute of the live tasks-file push; negative: none (default: %(default)s)",
    )
    p.add_argument(
        "--replay-only",
        action="store_true",
        help="generate a log and replay it instead (the replay summary)",
    )
    p.add_argument("--dir", type=Path, help="keep the work files here (default: a temporary dir)")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    if args.dir is not None and args.dir.exists() and not args.dir.is_dir():
        args.parser.error(f"--dir {args.dir} is a file, not a folder")
    try:
        return _replay_demo(args) if args.replay_only else _sim_demo(args)
    except (OSError, StreamfeatError) as exc:
        # a full disk, a folder that can't be made: the user's environment, not a bug
        text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        where = f" in {args.dir}" if args.dir else ""
        print(f"streamfeat demo: can't run{where}: {text[:1].lower()}{text[1:]}", file=sys.stderr)
        return 1


def _sim_demo(args: argparse.Namespace) -> int:
    from streamfeat.sim._cli import render_report, run_with_progress
    from streamfeat.sim._simulation import SimOptions

    console = Console()
    text = default_tasks_text()
    update = ((args.push_at, demo_update(text)),) if 0 <= args.push_at < args.minutes else ()
    console.print(
        f"[bold]streamfeat demo[/]: an endpoint and {args.devices} devices, {args.minutes:g} simulated "
        f"minutes at {args.speed:g}x"
        + (", chaos on" if args.chaos else "")
        + (f", tasks file v1 pushed at minute {args.push_at:g}" if update else "")
    )
    options = SimOptions(
        devices=args.devices, minutes=args.minutes, speed=args.speed, tasks_text=text,
        chaos=args.chaos, seed=args.seed, reconfigure=update, workdir=args.dir,
    )  # fmt: skip
    report = run_with_progress(options, console)
    console.print()
    render_report(report, console)
    return 0 if report.ok else 1


def _replay_demo(args: argparse.Namespace) -> int:
    from streamfeat.gen._generator import generate_events

    console = Console()
    with tempfile.TemporaryDirectory(prefix="streamfeat-demo-") as tmp:
        work = args.dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        log = work / "events.jsonl"
        with (
            console.status(f"generating {args.devices} devices x {args.minutes:g} min ..."),
            log.open("wb") as fh,
        ):
            for obj in generate_events(args.devices, args.minutes, args.seed):
                fh.write(orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE))
        console.print(f"generated {log} ({log.stat().st_size:,} bytes)")
        # the default tasks file with replay's idle rule on (docs/windows.md, "log time")
        text = default_tasks_text().replace("[engine]\n", '[engine]\nidle = "10m"\n', 1)
        config = parse_tasks(text, source="<default tasks>")
        opts = ReplayOptions(
            str(log), config, str(work / "records.jsonl"), db=str(work / "store.sqlite"), sizes=True
        )
        with console.status("replaying with the default tasks file ..."):
            summary = run_replay(opts)
        render_summary(summary, console)
        console.print(f"records in {work / 'records.jsonl'}" if args.dir else "")
    return 0
