from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from streamfeat import StorageError
from streamfeat.io import SCHEMA_VERSION, Checkpoint, QuarantineEntry, Store


def test_store_file_is_owner_only_with_wal(tmp_path: Path) -> None:
    store = Store(tmp_path / "sub" / "s.sqlite")
    store.add_records([{"kind": "late", "window": "w", "device": "d", "ts": 1}])
    for p in tmp_path.joinpath("sub").iterdir():
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600, p
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.schema_version == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    Store(path).db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StorageError):
        Store(path)


def test_records_strip_attachments_and_quarantine_keeps_bytes(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    store.add_records([{"kind": "trigger", "trigger": "t", "device": "d", "_events": (1, 2)}])
    assert list(store.records()) == [{"kind": "trigger", "trigger": "t", "device": "d"}]
    store.add_quarantine([QuarantineEntry("f", 3, b"\xff\x00", "line 3: bad")])
    assert list(store.quarantine()) == [QuarantineEntry("f", 3, b"\xff\x00", "line 3: bad")]
    assert store.counters()["quarantined"] == 1


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")

    def write_then_fail() -> None:
        with store.transaction():
            store.add_records([{"kind": "late", "window": "w", "device": "d", "ts": 1}])
            raise RuntimeError

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert list(store.records()) == []


def test_checkpoint_round_trip_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    Store(path).save_checkpoint(Checkpoint("replay", b"snap", 10, 123, 9))
    assert Store(path).load_checkpoint("replay") == Checkpoint("replay", b"snap", 10, 123, 9)
    assert Store(path).load_checkpoint("other") is None


def test_kv_state(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    assert store.get_state("k") is None
    store.put_state("k", b"1")
    store.put_state("k", b"2")
    assert store.get_state("k") == b"2"


def test_retention_by_age_counts_evictions(tmp_path: Path) -> None:
    now = [1_000]
    store = Store(tmp_path / "s.sqlite", now_ms=lambda: now[0])
    store.add_records([{"kind": "late", "window": "w", "device": "d", "ts": i} for i in range(5)])
    now[0] = 5_000
    store.add_records([{"kind": "late", "window": "w", "device": "d", "ts": 9}])
    evicted = store.apply_retention(max_age_ms=2_000, max_mb=0)
    assert evicted == {"evicted.age.records": 5}
    assert [r["ts"] for r in store.records()] == [9]
    assert store.counters()["evicted.age.records"] == 5


def test_retention_by_size_evicts_oldest_first(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    blob = "x" * 2000
    store.add_records(
        [
            {"kind": "feature", "feature": "f", "device": "d", "ts": i, "values": {"b": blob}}
            for i in range(600)
        ]
    )
    assert store.size_bytes() > 1024 * 1024
    evicted = store.apply_retention(max_age_ms=0, max_mb=0.5)
    assert store.size_bytes() <= 0.5 * 1024 * 1024
    left = [r["ts"] for r in store.records()]
    assert left == sorted(left)
    assert left[-1] == 599
    assert evicted["evicted.size.records"] == 600 - len(left)
    assert store.counters()["evicted.size.records"] == 600 - len(left)


def test_retention_gives_the_freed_pages_back_to_the_filesystem(tmp_path: Path) -> None:
    # the file, not only the pages in use, shrinks: every freed page is returned
    store = Store(tmp_path / "s.sqlite")
    blob = "x" * 2000
    store.add_records(
        [
            {"kind": "feature", "feature": "f", "device": "d", "ts": i, "values": {"b": blob}}
            for i in range(600)
        ]
    )
    store.apply_retention(max_age_ms=0, max_mb=0.25)
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    size = store.db.execute("PRAGMA page_size").fetchone()[0]
    assert store.db.execute("PRAGMA freelist_count").fetchone()[0] == 0
    assert pages * size <= 0.3 * 1024 * 1024
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert (tmp_path / "s.sqlite").stat().st_size <= 0.3 * 1024 * 1024
    store.close()


def test_reclaim_inside_a_transaction_leaves_it_open(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    with store.transaction():
        store.put_state("k", b"v")
        store.reclaim()
        assert store.db.conn.in_transaction
    assert store.get_state("k") == b"v"
    store.close()


def test_opening_a_store_twice_keeps_this_process_locks(tmp_path: Path) -> None:
    """A second Store on the same file must not drop the first one's SQLite locks.

    If it did, another process opening and closing the database would believe it was the last
    user, checkpoint and delete the WAL under our live connection, and our later writes would
    be lost.
    """
    path = tmp_path / "s.sqlite"
    first = Store(path)
    first.put_state("a", b"1")
    Store(path)  # same process, same file
    code = f"import sqlite3; c = sqlite3.connect({str(path)!r}); c.execute('select count(*) from kv').fetchall(); c.close()"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert Path(f"{path}-wal").exists()  # still ours: the other process did not remove it
    first.put_state("b", b"2")
    first.close()
    check = sqlite3.connect(path)
    assert check.execute("SELECT key FROM kv ORDER BY key").fetchall() == [("a",), ("b",)]
