"""The protocol core imports no I/O, clock or logging module (STYLE item 4)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import streamfeat.tunnel

CORE = ["_crypto.py", "_handshake.py", "_frames.py", "_items.py", "_protocol.py", "_events.py"]
FORBIDDEN = {"asyncio", "aiohttp", "socket", "time", "logging", "streamfeat._log", "threading"}
PKG = Path(streamfeat.tunnel.__file__).parent


def imported_modules(path: Path) -> set[str]:
    mods: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module)
    return mods


@pytest.mark.parametrize("name", CORE)
def test_core_module_imports_no_io(name: str) -> None:
    mods = imported_modules(PKG / name)
    bad = {m for m in mods if m.split(".")[0] in FORBIDDEN or m in FORBIDDEN}
    assert not bad, f"{name} imports {bad}"


def test_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    p = tmp_path / "m.py"
    p.write_text("import time\nfrom asyncio import sleep\n")
    assert {"time", "asyncio"} <= imported_modules(p)


def test_core_imports_only_core_streamfeat_modules() -> None:
    for name in CORE:
        for m in imported_modules(PKG / name):
            if m.startswith("streamfeat.tunnel."):
                assert m.removeprefix("streamfeat.tunnel.") + ".py" in CORE, (name, m)


def test_every_public_name_resolves() -> None:
    for name in streamfeat.tunnel.__all__:
        assert getattr(streamfeat.tunnel, name) is not None, name


def test_names_that_moved_out_still_resolve_from_the_old_face() -> None:
    import streamfeat.endpoint
    import streamfeat.upload

    for name, module in streamfeat.tunnel._MOVED.items():
        new = streamfeat.upload if module == "streamfeat.upload" else streamfeat.endpoint
        assert getattr(streamfeat.tunnel, name) is getattr(new, name), name
    with pytest.raises(AttributeError):
        _ = streamfeat.tunnel.NoSuchName  # type: ignore[attr-defined]
