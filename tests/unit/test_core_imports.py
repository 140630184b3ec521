"""What importing the core loads: no asyncio, aiohttp, sqlite3 or socket (issue 10).

Each import runs in a fresh interpreter so that nothing another test imported is counted; the
check reads ``sys.modules`` after the import, so it sees whatever the package faces pull in.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE = (
    "streamfeat",
    "streamfeat.triggers",
    "streamfeat.windows",
    "streamfeat.features",
    "streamfeat.encoders",
    "streamfeat.tasks",
    "streamfeat.engine",
)
FORBIDDEN = ("asyncio", "aiohttp", "sqlite3", "socket")


def loaded_after_import(module: str) -> set[str]:
    code = f"import sys, {module}\nprint('\\n'.join(sorted(sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return set(out.split())


@pytest.mark.parametrize("module", CORE)
def test_core_import_loads_no_io(module: str) -> None:
    loaded = loaded_after_import(module)
    bad = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN)
    assert not bad, f"import {module} loads {bad}"


def test_old_names_still_resolve_lazily() -> None:
    loaded = loaded_after_import("streamfeat.tasks")
    assert "streamfeat.runtime" not in loaded
    code = (
        "from streamfeat.tasks import TaskRunner, engine_reader\n"
        "from streamfeat.encoders import schemas_for\n"
        "from streamfeat.runtime import TaskRunner as R\n"
        "from streamfeat.engine import schemas_for as s\n"
        "assert TaskRunner is R and schemas_for is s\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
