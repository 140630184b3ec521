"""A device store with garbage in its middle is refused on open, with a recovery command."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from streamfeat.errors import StorageError
from streamfeat.io._store import Store


def filled(path: Path) -> Path:
    store = Store(path, now_ms=lambda: 1)
    with store.transaction():
        store.add_records(
            {"kind": "window", "device": "d", "window": "w", "end": i, "values": {"n": i}}
            for i in range(5000)
        )
    store.close()
    return path


def test_garbage_in_the_middle_of_a_store_is_refused_on_open(tmp_path: Path) -> None:
    path = filled(tmp_path / "dev.sqlite")
    size = path.stat().st_size
    with path.open("r+b") as f:  # one page in the middle overwritten
        f.seek(size // 2 // 4096 * 4096)
        f.write(b"\xa5" * 4096)
    with pytest.raises(StorageError, match="is damaged") as err:
        Store(path)
    assert "\n" not in str(err.value)
    assert "sqlite3 " in str(err.value)


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="the sqlite3 command is not installed")
def test_the_documented_recovery_command_gives_a_store_that_opens(tmp_path: Path) -> None:
    path = filled(tmp_path / "dev.sqlite")
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(size // 2 // 4096 * 4096)
        f.write(b"\xa5" * 4096)
    new = tmp_path / "NEW.sqlite"
    with pytest.raises(StorageError) as err:
        Store(path)
    command = str(err.value).split("`")[1].replace("NEW.sqlite", str(new))
    subprocess.run(command, shell=True, capture_output=True, check=True)
    store = Store(new)
    kept = sum(1 for _ in store.records())
    store.close()
    assert 0 < kept < 5000  # what was readable, not the damaged page


def test_a_healthy_store_opens(tmp_path: Path) -> None:
    path = filled(tmp_path / "dev.sqlite")
    store = Store(path)
    assert sum(1 for _ in store.records()) == 5000
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA quick_check").fetchone() == ("ok",)
    conn.close()
