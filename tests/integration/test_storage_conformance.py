"""One storage conformance suite, run against the SQLite default and PostgreSQL.

Every endpoint backend must pass it: batches stored exactly once (per call, across calls,
across two handles on the same database), records kept with new batches only, configs
replaced by version, the registry's add / revoke / lookup / list, and the first-message
replay cache. The PostgreSQL runs use a real server started by the ``pg_server`` fixture.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streamfeat.endpoint._registry import Registry
from streamfeat.endpoint._server import ReplayCache
from streamfeat.endpoint._storage import SQLiteStorage, StoredBatch
from streamfeat.errors import StorageError

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Backend:
    name: str
    location: str
    storage: Callable[[], Any]
    registry: Callable[[], Any]
    replay_cache: Callable[[], Any]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    opened: list[Any] = []

    def track(f: Callable[[], Any]) -> Callable[[], Any]:
        def make() -> Any:
            obj = f()
            opened.append(obj)
            return obj

        return make

    if request.param == "sqlite":
        db = str(tmp_path / "endpoint.db")
        shared = ReplayCache()
        yield Backend(
            "sqlite",
            db,
            track(lambda: SQLiteStorage(db)),
            track(lambda: Registry(db)),
            lambda: shared,  # in memory, one process: the cache is per endpoint process
        )
    else:
        from streamfeat.endpoint._postgres import (
            PostgresRegistry,
            PostgresReplayCache,
            PostgresStorage,
        )

        url = request.getfixturevalue("pg_url")
        yield Backend(
            "postgres",
            url,
            track(lambda: PostgresStorage(url)),
            track(lambda: PostgresRegistry(url)),
            track(lambda: PostgresReplayCache(url)),
        )
    for obj in opened:
        obj.close()


def _b(device: str, bid: bytes, payload: bytes = b"p", records: Any = None) -> StoredBatch:
    return StoredBatch(device, bid.ljust(16, b"\0"), payload, 1_767_225_600.0, records)


def test_new_batches_are_new_and_repeats_are_duplicates(backend: Backend) -> None:
    s = backend.storage()
    assert s.store_batches([_b("a", b"1"), _b("a", b"2"), _b("b", b"1")]) == [True, True, True]
    assert s.store_batches([_b("a", b"1"), _b("a", b"3")]) == [False, True]
    assert [(d, bid[:1], p) for d, bid, p in s.batches()] == [
        ("a", b"1", b"p"),
        ("a", b"2", b"p"),
        ("b", b"1", b"p"),
        ("a", b"3", b"p"),
    ]
    assert [bid[:1] for _, bid, _ in s.batches("b")] == [b"1"]


def test_size_bytes_counts_what_is_stored(backend: Backend) -> None:
    # the dashboard's storage tile and the storage-size gauge read it on every backend
    s = backend.storage()
    before = s.size_bytes()
    assert before > 0
    s.store_batches([_b("big", str(i).encode(), os.urandom(64 * 1024)) for i in range(64)])
    if backend.name == "sqlite":  # the file grows as it is written
        assert s.size_bytes() >= before + 4 * 2**20
    else:  # PostgreSQL: the database's size on the server (out-of-line payloads included)
        assert s.size_bytes() > before


def test_a_repeat_inside_one_group_is_stored_once(backend: Backend) -> None:
    s = backend.storage()
    assert s.store_batches([_b("a", b"1"), _b("a", b"1", b"other")]) == [True, False]
    assert [p for _, _, p in s.batches()] == [b"p"]


def test_identity_holds_across_two_handles_on_one_database(backend: Backend) -> None:
    s1, s2 = backend.storage(), backend.storage()
    assert s1.store_batches([_b("a", b"1")]) == [True]
    assert s2.store_batches([_b("a", b"1"), _b("a", b"2")]) == [False, True]
    assert s1.store_batches([_b("a", b"2")]) == [False]
    assert len(s1.batches()) == 2


def test_iter_batches_yields_every_batch_in_insertion_order(backend: Backend) -> None:
    s = backend.storage()
    for i in range(2500):  # over the PostgreSQL chunk size
        s.store_batches([_b(f"d{i % 7}", b"%d" % i, b"p%d" % i)])
    got = [(b.device, b.batch_id, b.payload, b.records) for b in s.iter_batches()]
    assert got == [
        (f"d{i % 7}", (b"%d" % i).ljust(16, b"\0"), b"p%d" % i, None) for i in range(2500)
    ]


def test_registry_add_many_is_all_or_nothing(backend: Backend) -> None:
    r = backend.registry()
    got = r.add_many([("a", b"\x01" * 32), ("b", b"\x02" * 32)], now=5.0)
    assert [(e.name, e.added) for e in got] == [("a", 5.0), ("b", 5.0)]
    with pytest.raises(StorageError):
        r.add_many([("c", b"\x03" * 32), ("a", b"\x04" * 32)])
    with pytest.raises(StorageError):
        r.add_many([("d", b"short")])
    assert [d.name for d in r.list()] == ["a", "b"]


def test_payload_bytes_round_trip_exactly(backend: Backend) -> None:
    s = backend.storage()
    payload = bytes(range(256)) * 100
    s.store_batches([_b("dev-ü", b"\x00\xff", payload)])
    [(device, bid, got)] = s.batches()
    assert (device, bid, got) == ("dev-ü", b"\x00\xff".ljust(16, b"\0"), payload)


def test_records_are_kept_for_new_batches_only(backend: Backend) -> None:
    s = backend.storage()
    recs = [{"kind": "feature", "values": {"n": 1}}, {"kind": "window", "key": "k"}]
    s.store_batches([_b("a", b"1", records=recs)])
    s.store_batches([_b("a", b"1", records=[{"kind": "other"}])])
    if backend.name == "sqlite":
        import sqlite3

        conn = sqlite3.connect(backend.location)
        rows = [r[0] for r in conn.execute("SELECT record FROM batch_records ORDER BY id")]
        conn.close()
        import json

        got = [json.loads(r) for r in rows]
    else:
        got = s.records()
    assert got == recs


def test_configs_are_set_replaced_and_per_device(backend: Backend) -> None:
    s = backend.storage()
    assert s.get_config("a") is None
    s.set_config("a", 1, b"v1")
    s.set_config("b", 7, b"other")
    s.set_config("a", 2, b"v2")
    assert s.get_config("a") == (2, b"v2")
    assert s.get_config("b") == (7, b"other")
    assert backend.storage().get_config("a") == (2, b"v2")  # visible to another handle


def test_registry_add_lookup_revoke_list(backend: Backend) -> None:
    r = backend.registry()
    k1, k2 = b"\x01" * 32, b"\x02" * 32
    e = r.add("phone-1", k1, now=10.0)
    assert (e.name, e.public_key, e.added, e.active) == ("phone-1", k1, 10.0, True)
    r.add("phone-2", k2, now=11.0)
    with pytest.raises(StorageError):
        r.add("phone-1", b"\x03" * 32)
    with pytest.raises(StorageError):
        r.add("phone-3", k1)
    with pytest.raises(StorageError):
        r.add("phone-4", b"short")
    assert r.lookup(b"\x09" * 32) is None
    assert r.revoke("phone-1", now=20.0) is True
    assert r.revoke("phone-1", now=21.0) is False
    assert r.revoke("nobody") is False
    got = r.lookup(k1)
    assert got is not None
    assert (got.name, got.revoked, got.active) == ("phone-1", 20.0, False)
    assert [(d.name, d.active) for d in backend.registry().list()] == [
        ("phone-1", False),
        ("phone-2", True),
    ]


def test_registry_validation_is_the_same_on_every_backend(backend: Backend) -> None:
    r = backend.registry()
    r.add("phone-1", b"\x01" * 32, now=1.0)
    for devices, message in [
        ([("", b"\x02" * 32)], "needs a name and a 32-byte public key"),
        ([("phone-2", b"short")], "needs a name and a 32-byte public key"),
        ([("phone-2", b"\x02" * 32), ("phone-2", b"\x03" * 32)], "given twice"),
        ([("phone-2", b"\x02" * 32), ("phone-3", b"\x02" * 32)], "given twice"),
        ([("phone-1", b"\x04" * 32)], "`phone-1` or its key is already registered"),
        ([("phone-2", b"\x02" * 32), ("phone-1", b"\x05" * 32)], "2 devices failed"),
    ]:
        with pytest.raises(StorageError, match=message):
            r.add_many(devices)
    assert [d.name for d in r.list()] == ["phone-1"]


def test_registry_get_revoked_among_and_data_version(backend: Backend) -> None:
    r, other = backend.registry(), backend.registry()
    r.add_many([("a", b"\x01" * 32), ("b", b"\x02" * 32), ("c", b"\x03" * 32)], now=1.0)
    got = r.get("b")
    assert got is not None
    assert (got.name, got.public_key, got.active) == ("b", b"\x02" * 32, True)
    assert r.get("nobody") is None
    v0 = r.data_version()
    assert r.data_version() == v0  # quiet: no change
    assert other.revoke("b", now=2.0)  # another handle, as `device revoke` in another process
    assert r.data_version() != v0
    assert r.revoked_among(["a", "b", "nobody"]) == ["b"]
    assert r.revoked_among([]) == []
    got = r.get("b")
    assert got is not None
    assert got.revoked == 2.0


def test_replay_cache_refuses_a_second_use(backend: Backend) -> None:
    c = backend.replay_cache()
    assert c.seen(b"e" * 32) is False
    assert c.seen(b"f" * 32) is False
    assert c.seen(b"e" * 32) is True


# ---- PostgreSQL only: what a shared database adds -------------------------------------------


def test_postgres_replay_cache_is_shared_between_handles(pg_url: str) -> None:
    from streamfeat.endpoint._postgres import PostgresReplayCache

    a, b = PostgresReplayCache(pg_url), PostgresReplayCache(pg_url)
    try:
        assert a.seen(b"x" * 32) is False
        assert b.seen(b"x" * 32) is True  # another process's handle refuses it
    finally:
        a.close()
        b.close()


def test_postgres_schema_version_is_recorded_and_a_newer_one_refused(pg_url: str) -> None:
    from streamfeat.endpoint._postgres import (
        SCHEMA_VERSION,
        PostgresStorage,
        connect,
        schema_version,
    )

    conn = connect(pg_url)
    try:
        assert schema_version(conn) == 0
        PostgresStorage(pg_url).close()
        assert schema_version(conn) == SCHEMA_VERSION
        PostgresStorage(pg_url).close()  # a second start migrates nothing
        assert schema_version(conn) == SCHEMA_VERSION
        conn.execute(
            "UPDATE streamfeat_meta SET value = %s WHERE key = 'schema_version'",
            (str(SCHEMA_VERSION + 1),),
        )
        with pytest.raises(StorageError):
            PostgresStorage(pg_url)
    finally:
        conn.close()


RACER = """
import os, sys, time
from streamfeat.endpoint._postgres import PostgresStorage
from streamfeat.endpoint._storage import StoredBatch
s = PostgresStorage(sys.argv[1])
while not os.path.exists(sys.argv[2]):
    time.sleep(0.001)
new = []
for i in range(int(sys.argv[3])):
    group = [StoredBatch("d%d" % (j % 3), b"%015d" % (i * 4 + j) + b"!", b"x", 0.0) for j in range(4)]
    for b, ok in zip(group, s.store_batches(group)):
        if ok:
            new.append(b.batch_id.decode())
print(" ".join(new))
"""


def test_postgres_exactly_once_across_processes_racing_on_the_same_batches(
    pg_url: str, tmp_path: Path
) -> None:
    from streamfeat.endpoint._postgres import PostgresStorage

    PostgresStorage(pg_url).close()  # schema first, so the racers only insert
    go = tmp_path / "go"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    n = 150
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, pg_url, str(go), str(n)],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(4)
    ]
    go.touch()
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    claimed = [bid for out in outs for bid in out.split()]
    # every batch is reported new by exactly one process, and stored exactly once
    assert sorted(claimed) == sorted({b"%015d!".decode() % k for k in range(n * 4)})
    s = PostgresStorage(pg_url)
    try:
        assert len(s.batches()) == n * 4
    finally:
        s.close()


def test_postgres_missing_server_is_a_one_line_storage_error() -> None:
    pytest.importorskip("psycopg")
    from streamfeat.endpoint._postgres import PostgresStorage

    with pytest.raises(StorageError) as info:
        PostgresStorage("postgresql://nobody@127.0.0.1:1/none")
    assert "\n" not in str(info.value)
    assert "127.0.0.1:1" in str(info.value)
