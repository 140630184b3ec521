"""`streamfeat serve`'s limit options are generated from the `Limits` dataclass: every field has
exactly one option, with its help, unit and default, and the options give back the Limits."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from streamfeat.cli import build_parser
from streamfeat.endpoint._cli import limits_from_args
from streamfeat.endpoint._limits import Limits, limit_options, option_of
from streamfeat.errors import ConfigError


def _serve(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *argv])


def test_every_limits_field_has_one_option_in_serve_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = [f.name for f in dataclasses.fields(Limits)]
    assert [o.field for o in limit_options()] == names
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for o in limit_options():
        assert f"{o.option} {o.metavar}" in text
        assert f"{' '.join(o.help.split())} (default: {o.default})" in text
    assert "--quota-mb MB" in text  # a field may name its own option and unit


def test_defaults_give_the_default_limits_and_each_option_sets_its_field() -> None:
    assert limits_from_args(_serve()) == Limits()
    values = {
        "--handshake-timeout": ("2.5", 2.5),
        "--max-unauthenticated": ("7", 7),
        "--max-unauthenticated-per-source": ("3", 3),
        "--window": ("9", 9),
        "--quota-mb": ("1.5", 1_500_000),
        "--revocation-poll": ("0.25", 0.25),
    }
    assert set(values) == {o.option for o in limit_options()}
    for o in limit_options():
        text, want = values[o.option]
        got = limits_from_args(_serve(o.option, text))
        assert got == dataclasses.replace(Limits(), **{o.field: want})


def test_a_bad_value_names_its_option() -> None:
    assert option_of("quota_bytes") == "--quota-mb"
    with pytest.raises(ConfigError, match="--quota-mb"):
        limits_from_args(_serve("--quota-mb", "-1")).check()
    with pytest.raises(ConfigError, match="--window"):
        limits_from_args(_serve("--window", "0")).check()
