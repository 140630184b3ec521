"""The ``streamfeat`` command line.

Each subsystem contributes its subcommands from its own module: a module listed in
``_COMMAND_MODULES`` has ``add_parsers(subparsers)``, which adds parsers whose ``func(args)``
returns the exit code. ``logging.basicConfig`` is called here and nowhere else.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

__all__ = ["EnvDefault", "build_parser", "main"]

_COMMAND_MODULES = (
    "streamfeat._cli_replay",  # replay
    "streamfeat._cli_demo",  # demo
    "streamfeat._cli_data",  # generate, convert
    "streamfeat.tunnel._cli",  # serve, keys, device
    "streamfeat.agent._cli",  # agent
    "streamfeat._cli_simulate",  # simulate
)


class EnvDefault(argparse.Action):
    """An option whose default comes from an environment variable, shown in ``--help``."""

    def __init__(
        self, envvar: str, required: bool = False, default: object = None, **kwargs: object
    ) -> None:
        if envvar in os.environ:
            default = os.environ[envvar]
        if required and default is not None:
            required = False
        help_text = kwargs.pop("help", "") or ""
        kwargs["help"] = f"{help_text} [env {envvar}; default: %(default)s]"
        super().__init__(default=default, required=required, **kwargs)  # type: ignore[arg-type]

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subsystem's subcommands."""
    parser = argparse.ArgumentParser(
        prog="streamfeat",
        description="On-device behaviour processing: triggers, windows, features, uploads.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args.parser = parser
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
