"""The model matrix: which bundle a device runs, by user group (rows) and device tier (columns).

A matrix file is TOML::

    default = "base"                 # the default cell: a bundle name every device can run
    groups = ["new", "power"]        # rows, optional: groups the cells may name
    tiers = ["low", "mid", "high"]   # columns, optional: tiers the cells may name

    [cells]
    "power/high" = "big-model"       # one cell
    "power/*" = "mid-model"          # a whole row
    "*/low" = "tiny-model"           # a whole column

    [bundles]                        # bundle name -> bundle id (sha256), filled by
    base = "9f2c..."                 # `streamfeat release create`

**Resolution** (documented in docs/release.md): a device of group ``g`` and tier ``t`` runs
the first cell found among ``g/t``, ``g/*``, ``*/t``, then ``default``. A device with no
group is in group ``*``; a device with an unknown tier (not graded yet, or a tier the matrix
does not name) resolves as if its tier were ``*``, i.e. its group's row, then the default:
never a column chosen for stronger devices.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field

from streamfeat.errors import ConfigError

__all__ = ["ANY", "Matrix", "parse_matrix"]

ANY = "*"


@dataclass(frozen=True, slots=True)
class Matrix:
    """A parsed matrix: cells ``(group, tier) -> bundle name`` and the default."""

    default: str
    cells: Mapping[tuple[str, str], str] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()
    bundles: Mapping[str, str] = field(default_factory=dict)

    def resolve(self, group: str | None, tier: str | None) -> str:
        """The bundle name for a device of ``group`` and ``tier`` (``None``: unknown)."""
        g = group if group else ANY
        t = tier if tier and (not self.tiers or tier in self.tiers) else ANY
        for key in ((g, t), (g, ANY), (ANY, t)):
            name = self.cells.get(key)
            if name is not None:
                return name
        return self.default

    def names(self) -> set[str]:
        """Every bundle name the matrix uses."""
        return {self.default, *self.cells.values()}


def parse_matrix(text: str, *, source: str = "matrix") -> Matrix:
    """Parse a matrix file.

    Raises:
        ConfigError: naming the file, the key and the reason.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = f"not valid TOML: {exc}"
        raise ConfigError(msg, file=source) from exc
    unknown = set(doc) - {"default", "groups", "tiers", "cells", "bundles"}
    if unknown:
        msg = "unknown key (allowed: default, groups, tiers, cells, bundles)"
        raise ConfigError(msg, file=source, key=sorted(unknown)[0])
    default = doc.get("default")
    if not isinstance(default, str) or not default:
        raise ConfigError("a bundle name is required", file=source, key="default")
    groups = _names(doc.get("groups", []), source, "groups")
    tiers = _names(doc.get("tiers", []), source, "tiers")
    cells: dict[tuple[str, str], str] = {}
    raw_cells = doc.get("cells", {})
    if not isinstance(raw_cells, dict):
        raise ConfigError("must be a table", file=source, key="cells")
    for spec, name in raw_cells.items():
        key = f"cells.{spec}"
        g, sep, t = spec.partition("/")
        if not sep or not g or not t:
            raise ConfigError("a cell is named GROUP/TIER (either may be *)", file=source, key=key)
        if groups and g != ANY and g not in groups:
            raise ConfigError(f"group {g!r} is not in groups", file=source, key=key)
        if tiers and t != ANY and t not in tiers:
            raise ConfigError(f"tier {t!r} is not in tiers", file=source, key=key)
        if not isinstance(name, str) or not name:
            raise ConfigError("must be a bundle name", file=source, key=key)
        cells[(g, t)] = name
    bundles = doc.get("bundles", {})
    if not isinstance(bundles, dict) or not all(
        isinstance(v, str) and len(v) == 64 for v in bundles.values()
    ):
        raise ConfigError("must map bundle names to sha256 ids", file=source, key="bundles")
    return Matrix(default, cells, groups, tiers, dict(bundles))


def _names(value: object, source: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError("must be a list of names", file=source, key=key)
    if ANY in value:
        raise ConfigError(f"{ANY!r} is not a name", file=source, key=key)
    return tuple(value)
