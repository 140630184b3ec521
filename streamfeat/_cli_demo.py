"""``streamfeat demo``: generate a log, replay it with the embedded default tasks file, summarise."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from streamfeat._cli_replay import default_tasks_text, render_summary
from streamfeat._replay import ReplayOptions, run_replay
from streamfeat.tasks import parse_tasks

__all__ = ["add_parsers"]


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="generate a behaviour log and replay it with the default tasks file",
        description="Generate a realistic log for a few hundred devices, replay it through the "
        "embedded default tasks file, and print the summary with the size table.",
    )
    p.add_argument("--devices", type=int, default=200, help="devices to generate (default: %(default)s)")
    p.add_argument("--minutes", type=float, default=20, help="minutes of app use (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    p.add_argument("--dir", type=Path, help="keep the log and records here (default: a temporary dir)")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from streamfeat._generator import generate_events

    console = Console()
    with tempfile.TemporaryDirectory(prefix="streamfeat-demo-") as tmp:
        work = args.dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        log = work / "events.jsonl"
        with console.status(f"generating {args.devices} devices x {args.minutes:g} min ..."):
            with log.open("wb") as fh:
                for obj in generate_events(args.devices, args.minutes, args.seed):
                    fh.write(orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE))
        console.print(f"generated {log} ({log.stat().st_size:,} bytes)")
        config = parse_tasks(default_tasks_text(), source="<default tasks>")
        opts = ReplayOptions(str(log), config, str(work / "records.jsonl"), db=str(work / "store.sqlite"), sizes=True)
        with console.status("replaying with the default tasks file ..."):
            summary = run_replay(opts)
        render_summary(summary, console)
        console.print(f"records in {work / 'records.jsonl'}" if args.dir else "")
    return 0
