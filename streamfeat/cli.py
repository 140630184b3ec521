"""The ``streamfeat`` command line.

Each app contributes its subcommands from its own ``_cli`` module: ``add_parsers(subparsers)``
adds parsers whose ``func(args)`` returns the exit code. The order of ``_COMMANDS`` is the
order of ``streamfeat --help``. ``logging.basicConfig`` is called here and nowhere else.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import streamfeat
from streamfeat import _tasks_cli as tasks_cli
from streamfeat._cli_env import EnvDefault
from streamfeat.agent import _cli as agent_cli
from streamfeat.endpoint import _cli as endpoint_cli
from streamfeat.endpoint import _records_cli as records_cli
from streamfeat.endpoint import _release_cli as release_cli
from streamfeat.gen import _cli as gen_cli
from streamfeat.replay import _cli as replay_cli
from streamfeat.sim import _cli as sim_cli
from streamfeat.sim import _demo as demo_cli
from streamfeat.train import _cli as train_cli

__all__ = ["EnvDefault", "build_parser", "main"]

_COMMANDS: tuple[Callable[[Any], None], ...] = (
    replay_cli.add_parsers,  # replay
    demo_cli.add_parsers,  # demo
    gen_cli.add_parsers,  # generate, convert
    endpoint_cli.add_parsers,  # serve, keys, device
    records_cli.add_parsers,  # records
    agent_cli.add_parsers,  # agent
    sim_cli.add_parsers,  # simulate
    release_cli.add_parsers,  # bundle, release
    tasks_cli.add_parsers,  # tasks init, tasks check
    train_cli.add_parsers,  # train
)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subsystem's subcommands."""
    parser = argparse.ArgumentParser(
        prog="streamfeat",
        description="On-device behaviour processing: triggers, windows, features, uploads.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument(
        "--version", action="version", version=f"streamfeat {streamfeat.__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add_parsers in _COMMANDS:
        add_parsers(sub)
    return parser


class _OneLineErrors:
    """What commands get as ``args.parser``: ``error(message)`` prints ``PROG COMMAND: error:
    MESSAGE`` as one line on stderr and exits with status 2, as argparse does, without the
    usage text."""

    def __init__(self, prog: str) -> None:
        self.prog = prog

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # Errors found after parsing (a tasks file refused, a folder missing) are the user's input,
    # not the command line's syntax: one line naming the command, no usage text.
    args.parser = _OneLineErrors(f"{parser.prog} {args.command}")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
