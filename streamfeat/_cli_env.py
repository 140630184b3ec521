"""Helpers shared by the app command lines (kept below them so that none imports ``cli``)."""

from __future__ import annotations

import argparse
import os

__all__ = ["EnvDefault"]


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
