"""The optional extras load only when used: importing replay or the endpoint loads no Dask and
no PostgreSQL driver, and without them the commands say which extra to install."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.unit.test_layer_imports import loaded_by


@pytest.mark.parametrize("module", ["streamfeat.replay", "streamfeat.endpoint", "streamfeat.cli"])
def test_importing_loads_no_dask_and_no_psycopg(module: str) -> None:
    loaded = loaded_by(module)
    assert not {m for m in loaded if m.split(".")[0] in ("dask", "distributed", "psycopg")}


HIDE = """
import sys
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("distributed", "dask", "psycopg"):
            raise ImportError("hidden: " + name)
sys.meta_path.insert(0, Hide())
from streamfeat.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_without_the_extras_the_commands_say_what_to_install(tmp_path) -> None:  # type: ignore[no-untyped-def]
    events = tmp_path / "e.jsonl"
    events.write_bytes(b'{"device":"a","ts":1,"type":"click"}\n')
    run = [sys.executable, "-c", HIDE]
    out = subprocess.run(
        [*run, "replay", str(events), "--out", str(tmp_path / "o"), "--cluster", "local:1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "pip install 'streamfeat[cluster]'" in out.stderr
    out = subprocess.run(
        [*run, "device", "list", "--db", "postgresql://x@127.0.0.1:1/db"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "pip install 'streamfeat[postgres]'" in out.stderr
