"""``streamfeat tasks init`` and ``streamfeat tasks check``: start and check a tasks file.

``init`` prints a commented starting file (``streamfeat/data/starter.toml``). ``check`` does
everything a run would do at load, without running anything: it validates the file, compiles
the trigger patterns into the engine, derives the upload schemas, imports every task's code
(the file's folder first, as the replay and the agent do) and loads the models if the file
declares any; then it prints what the file declares. An error exits 2 with one line naming
the file, the key and the reason.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from typing import Any

from streamfeat.data import starter_tasks_text
from streamfeat.encoders import schemas_for
from streamfeat.engine import build_engine
from streamfeat.errors import StreamfeatError
from streamfeat.tasks import TasksConfig, load_tasks, resolve_tasks

__all__ = ["add_parsers", "check_tasks", "describe"]


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "tasks",
        help="start (init) or check a tasks file",
        description="Write a commented starting tasks file, or check one.",
    )
    tsub = p.add_subparsers(dest="tasks_command", metavar="ACTION")
    tsub.required = True
    init = tsub.add_parser(
        "init",
        help="print a commented starting tasks file",
        description="Print a commented starting tasks file: streamfeat tasks init > tasks.toml",
    )
    init.set_defaults(func=_init)
    check = tsub.add_parser(
        "check",
        help="validate a tasks file, compile it, import its task code; print what it declares",
        description="Validate TASKS.toml, compile its patterns, derive its upload schemas, "
        "import its task code (the file's folder first) and load its models; print what it "
        "declares. Exit 2 with the file, the key and the reason on an error.",
    )
    check.add_argument("file", metavar="TASKS.toml")
    check.add_argument("-q", "--quiet", action="store_true", help="print nothing when it is fine")
    check.set_defaults(func=_check)


def _init(args: argparse.Namespace) -> int:
    sys.stdout.write(starter_tasks_text())
    return 0


def _check(args: argparse.Namespace) -> int:
    try:
        config = check_tasks(args.file)
    except StreamfeatError as exc:
        print(f"streamfeat tasks check: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        sys.stdout.write(describe(config))
    return 0


def check_tasks(path: str) -> TasksConfig:
    """Load ``path`` and do every load-time step of a run (see the module docstring).

    Raises:
        ConfigError: naming the file, the key and the reason (``TaskLoadError`` for task code).
    """
    config = load_tasks(path)
    build_engine(config)  # compiles the trigger patterns and builds every stage
    schemas_for(config)
    resolve_tasks(config)
    _load_models(config)
    return config


def _load_models(config: TasksConfig) -> None:
    # `[models.*]` is added by the ranking work; when a tasks file declares models and the
    # models package offers a loader, they are loaded here as the agent would load them
    models = getattr(config, "models", None)
    if not models:
        return
    try:
        from streamfeat import models as models_pkg
    except ImportError:
        return
    load = getattr(models_pkg, "load_models", None)
    if callable(load):
        load(config)


def describe(config: TasksConfig) -> str:
    """Return the summary ``tasks check`` prints: every section and what it declares."""
    doc: dict[str, Any] = tomllib.loads(config.text) if config.text else {}
    lines = [f"{config.source}: ok"]
    e = config.engine
    lines.append(
        f"engine: lateness {e.lateness} ms, partial matches up to {e.partial_limit} ms "
        f"and {e.partial_limit_events} events"
    )
    lines.append(f"triggers ({len(config.triggers)}):")
    lines += [f"  {n} = {t.text}" for n, t in config.triggers.items()]
    lines.append(f"windows ({len(config.windows)}):")
    for n in config.windows:
        w = doc.get("windows", {}).get(n, {})
        aggs = ", ".join(f"{k} = {v}" for k, v in w.get("aggregate", {}).items())
        key = w.get("key", "device")
        filt = f", filter {w['filter']}" if "filter" in w else ""
        lines.append(f"  {n}: {w.get('assign')} by {key}{filt}: {aggs or 'no aggregates'}")
    lines.append(f"features ({len(config.features)}):")
    lines += [f"  {n}: {f.kind}" for n, f in config.features.items()]
    lines.append(f"tasks ({len(config.tasks)}):")
    lines += [
        f"  {n}: on {', '.join(t.on)} -> {t.run} (timeout {t.timeout} ms)"
        for n, t in config.tasks.items()
    ]
    models = getattr(config, "models", None)
    if models:
        lines.append(f"models ({len(models)}): {', '.join(models)}")
    u = config.upload
    lines.append(f"upload: {', '.join(u.records)} as {u.encoding}")
    return "\n".join(lines) + "\n"
