"""Every doctest in ``streamfeat/`` runs, and a doctest added later is picked up by itself.

The modules are found by walking the source tree for ``>>>`` rather than listed, so moving a
module or adding an example needs no change here. A module that can't be imported because an
optional extra is not installed is skipped with the extra's missing module named; any other
import error fails.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import streamfeat

PACKAGE_DIR = Path(streamfeat.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules_with_doctests() -> list[str]:
    return sorted(
        _module_name(p)
        for p in PACKAGE_DIR.rglob("*.py")
        if ">>>" in p.read_text(encoding="utf-8") and p.name != "__main__.py"
    )


MODULES = _modules_with_doctests()


def test_the_walk_finds_the_doctests() -> None:
    # a guard for the walk itself: if it found nothing, every parametrised case would vanish
    assert "streamfeat.clock" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] == "streamfeat":
            raise
        pytest.skip(f"{name} needs {exc.name!r}, an optional extra not installed here")
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report: list[str] = []
    for test in finder.find(module, name):
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
    assert runner.tries > 0, f"{name} holds '>>>' but no doctest of it was found"
