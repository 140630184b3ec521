"""The apps' packages: the old import paths still give the same objects, the CLI lists every app."""

from __future__ import annotations

import importlib

import pytest

from streamfeat.cli import build_parser

# old path -> new path; every name the old path lists must be the very object at the new one
# (the documented private paths, kept as aliases for one release; README "Import paths")
SHIMS = {
    "streamfeat._store": "streamfeat.io._store",
    "streamfeat._generator": "streamfeat.gen._generator",
    "streamfeat._simulate": "streamfeat.sim._simulation",
    "streamfeat._shell": "streamfeat.runtime._engine",
    "streamfeat._pipeline": "streamfeat.engine._build",
    "streamfeat.convert": "streamfeat.gen.convert",
    "streamfeat.convert.taobao": "streamfeat.gen.convert.taobao",
}


@pytest.mark.parametrize(("old", "new"), sorted(SHIMS.items()))
def test_old_paths_reexport_the_moved_objects(old: str, new: str) -> None:
    old_mod, new_mod = importlib.import_module(old), importlib.import_module(new)
    assert old_mod.__doc__ is not None
    assert old_mod.__doc__.startswith(f"Moved to {new};")
    assert old_mod.__all__
    for name in old_mod.__all__:
        assert getattr(old_mod, name) is getattr(new_mod, name), f"{old}.{name}"


def test_converters_registered_once_through_either_path() -> None:
    old = importlib.import_module("streamfeat.convert")
    new = importlib.import_module("streamfeat.gen.convert")
    assert old.CONVERTERS is new.CONVERTERS
    assert "taobao" in new.CONVERTERS


def test_cli_lists_every_app_command_in_order() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sub.choices is not None
    assert list(sub.choices) == [
        "replay",
        "demo",
        "generate",
        "convert",
        "serve",
        "keys",
        "device",
        "records",
        "agent",
        "simulate",
        "bundle",
        "release",
        "tasks",
        "train",
    ]


def test_default_tasks_text_parses() -> None:
    from streamfeat.data import default_tasks_text
    from streamfeat.tasks import parse_tasks

    config = parse_tasks(default_tasks_text(), source="<default tasks>")
    assert config.triggers


def test_simulator_reaches_the_endpoint_database_only_through_its_apis() -> None:
    import ast
    from pathlib import Path

    import streamfeat.sim

    root = Path(streamfeat.sim.__file__).parent
    for path in sorted(root.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert "sqlite3" not in names, f"{path.name} imports sqlite3"


def test_a_named_command_imports_only_its_own_module() -> None:
    """``streamfeat replay`` builds only the replay parser: the endpoint, the simulator, the
    agent and training are not imported (a replay's peak memory, docs/performance.md)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from streamfeat.cli import build_parser\n"
        "p = build_parser('replay')\n"
        "sub = next(a for a in p._actions if a.dest == 'command')\n"
        "print(sorted(sub.choices))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[1:2] in "
        "(['endpoint'], ['sim'], ['agent'], ['train'], ['gen'])))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.splitlines()  # fmt: skip
    assert out[0] == "['replay']"
    assert out[1] == "[]", out[1]
    # an unknown word falls back to every command, so argparse names the choices
    sub = next(a for a in build_parser("nonsense")._actions if a.dest == "command")
    assert sub.choices is not None
    assert len(sub.choices) == 14
