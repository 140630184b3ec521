"""`streamfeat records` after a real fleet run against `streamfeat serve`: every record the
simulator's audit counted as stored is listed once, decoded; filters and formats agree. The
same assertions run on the SQLite default and on PostgreSQL (a real server from the
``pg_server`` fixture; skipped without one unless STREAMFEAT_REQUIRE_PG=1)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from streamfeat.cli import main
from streamfeat.gen import generate_events
from streamfeat.sim._fleet import record_digest
from tests.integration.tunnel_procs import ROOT, Endpoint, env


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict]:
    tmp = tmp_path_factory.mktemp("fleet")
    if request.param == "sqlite":
        db, serve_extra, sim_extra = str(tmp / "ep.db"), [], []
    else:
        db = request.getfixturevalue("pg_server").create_database()
        key = str(tmp / "endpoint.key")
        serve_extra, sim_extra = ["--key", key], ["--server-key", key]
    ep = Endpoint(db, extra=serve_extra)  # type: ignore[arg-type]
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "streamfeat", "simulate", "--server", ep.url, "--server-db",
             db, *sim_extra, "--devices", "5", "--minutes", "3", "--speed", "0", "--processes", "1",
             "--json"],
            capture_output=True, text=True, env=env(), cwd=ROOT, timeout=300,
        )  # fmt: skip
    finally:
        assert ep.stop() == 0
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["ok"]
    # the devices are named sim<pid>-<time>-dev00000N at an external endpoint, but each user is
    # drawn from the fleet id and the seed: the events are the generated log's, every run
    assert report["events"] == sum(1 for _ in generate_events(5, 3, 1))
    assert report["stored"] > 20
    return db, report


def _jsonl(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict]:
    capsys.readouterr()
    assert main(["records", *argv, "--format", "jsonl"]) == 0
    return [json.loads(x) for x in capsys.readouterr().out.splitlines()]


def test_every_audited_record_is_listed_once(
    fleet: tuple[str, dict], capsys: pytest.CaptureFixture[str]
) -> None:
    db, report = fleet
    rows = _jsonl(capsys, "--db", db)
    assert len(rows) == report["stored"] == report["queued"]
    # the same records the audit decoded from the raw batches, each once
    from streamfeat.data import default_tasks_text
    from streamfeat.encoders import decode_batch, index_schemas, schemas_for
    from streamfeat.endpoint._backend import open_storage
    from streamfeat.tasks import parse_tasks
    from streamfeat.tunnel._items import split_items

    schemas = index_schemas(schemas_for(parse_tasks(default_tasks_text())))
    st = open_storage(db)
    try:
        raw = Counter(
            record_digest(r)
            for b in st.iter_batches()
            for item in split_items(b.payload)
            for r in decode_batch(item, schemas)
        )
    finally:
        st.close()
    assert Counter(record_digest(r["record"]) for r in rows) == raw
    assert Counter(r["kind"] for r in rows) == Counter(
        {k: n for k, n in report["records"].items() if k in ("feature", "window", "task")}
    )
    for r in rows:
        assert r["record"]["device"] == r["device"]
        assert r["kind"] == r["record"]["kind"]
        assert isinstance(r["record"].get("values"), dict)


def test_filters_and_formats_agree(
    fleet: tuple[str, dict], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db, _ = fleet
    every = _jsonl(capsys, "--db", db)
    device = every[0]["device"]
    mine = _jsonl(capsys, "--db", db, "--device", device)
    assert mine == [r for r in every if r["device"] == device]
    windows = _jsonl(capsys, "--db", db, "--kind", "window")
    assert windows == [r for r in every if r["kind"] == "window"]
    ipv = _jsonl(capsys, "--db", db, "--kind", "feature", "--name", "ipv")
    assert ipv == [r for r in every if r["name"] == "ipv"]
    times = sorted(r["time"] for r in every)
    mid = times[len(times) // 2]
    late = _jsonl(capsys, "--db", db, "--since", str(mid))
    assert late == [r for r in every if r["time"] >= mid]
    assert _jsonl(capsys, "--db", db, "--limit", "3") == every[:3]
    out = tmp_path / "all.csv"
    assert main(["records", "--db", db, "--format", "csv", "--out", str(out), "--no-progress"]) == 0
    assert len(list(csv.DictReader(io.StringIO(out.read_text())))) == len(every)
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "all.parquet"
    assert main(["records", "--db", db, "--format", "parquet", "--out", str(out)]) == 0
    assert pq.read_table(out).column("id").to_pylist() == [r["id"] for r in every]
    from streamfeat.endpoint import records_table

    assert records_table(db, device=device).num_rows == len(mine)
    # the Python API on an open storage object, and the count behind the progress bar
    from streamfeat.endpoint._backend import open_storage
    from streamfeat.endpoint._records import RecordQuery, count_records, iter_records

    st = open_storage(db)
    try:
        got = list(iter_records(st, kind="window"))
    finally:
        st.close()
    assert [r["id"] for r in got] == [r["id"] for r in windows]
    assert count_records(db, RecordQuery(kind="window")) == len(windows)
    assert count_records(db) == len(every)
