"""The ``streamfeat`` command line.

Each app contributes its subcommands from its own ``_cli`` module: ``add_parsers(subparsers)``
adds parsers whose ``func(args)`` returns the exit code. The order of ``_COMMANDS`` is the
order of ``streamfeat --help``. ``logging.basicConfig`` is called here and nowhere else.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

import streamfeat
from streamfeat._cli_env import EnvDefault

__all__ = ["EnvDefault", "build_parser", "main"]

#: Each app's ``_cli`` module and the top-level commands its ``add_parsers`` adds, in the order
#: ``streamfeat --help`` lists them. A command line that names a command imports only its
#: module: ``streamfeat replay`` does not load the endpoint, the simulator or PyTorch's
#: neighbours (about 30 MB of a replay's peak memory, docs/performance.md).
_COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("streamfeat.replay._cli", ("replay",)),
    ("streamfeat.sim._demo", ("demo",)),
    ("streamfeat.gen._cli", ("generate", "convert")),
    ("streamfeat.endpoint._cli", ("serve", "keys", "device")),
    ("streamfeat.endpoint._records_cli", ("records",)),
    ("streamfeat.agent._cli", ("agent",)),
    ("streamfeat.sim._cli", ("simulate",)),
    ("streamfeat.endpoint._release_cli", ("bundle", "release")),
    ("streamfeat._tasks_cli", ("tasks",)),
    ("streamfeat.train._cli", ("train",)),
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Return the argument parser with every subsystem's subcommands, or, given a known
    ``command``, with only the subcommands of the module that owns it."""
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
    owners = [m for m, names in _COMMANDS if command in names]
    for module, _names in _COMMANDS:
        if not owners or module in owners:
            importlib.import_module(module).add_parsers(sub)
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
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(next((w for w in words if not w.startswith("-")), None))
    args = parser.parse_args(words)
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
