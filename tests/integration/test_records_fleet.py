"""`streamfeat records` after a real fleet run against `streamfeat serve`: every record the
simulator's audit counted as stored is listed once, decoded; filters and formats agree."""

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
from streamfeat.sim._fleet import record_digest
from tests.integration.tunnel_procs import ROOT, Endpoint, env


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("fleet")
    db = tmp / "ep.db"
    ep = Endpoint(db)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "streamfeat", "simulate", "--server", ep.url, "--server-db",
             str(db), "--devices", "5", "--minutes", "3", "--speed", "0", "--processes", "1", "--json"],
            capture_output=True, text=True, env=env(), cwd=ROOT, timeout=300,
        )  # fmt: skip
    finally:
        assert ep.stop() == 0
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["ok"]
    assert report["stored"] > 20
    return db, report


def _jsonl(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict]:
    capsys.readouterr()
    assert main(["records", *argv, "--format", "jsonl"]) == 0
    return [json.loads(x) for x in capsys.readouterr().out.splitlines()]


def test_every_audited_record_is_listed_once(
    fleet: tuple[Path, dict], capsys: pytest.CaptureFixture[str]
) -> None:
    db, report = fleet
    rows = _jsonl(capsys, "--db", str(db))
    assert len(rows) == report["stored"] == report["queued"]
    # the same records the audit decoded from the raw batches, each once
    from streamfeat.data import default_tasks_text
    from streamfeat.encoders import decode_batch, index_schemas, schemas_for
    from streamfeat.endpoint import SQLiteStorage
    from streamfeat.tasks import parse_tasks
    from streamfeat.tunnel._items import split_items

    schemas = index_schemas(schemas_for(parse_tasks(default_tasks_text())))
    st = SQLiteStorage(db)
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
    fleet: tuple[Path, dict], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db, _ = fleet
    every = _jsonl(capsys, "--db", str(db))
    device = every[0]["device"]
    mine = _jsonl(capsys, "--db", str(db), "--device", device)
    assert mine == [r for r in every if r["device"] == device]
    windows = _jsonl(capsys, "--db", str(db), "--kind", "window")
    assert windows == [r for r in every if r["kind"] == "window"]
    ipv = _jsonl(capsys, "--db", str(db), "--kind", "feature", "--name", "ipv")
    assert ipv == [r for r in every if r["name"] == "ipv"]
    times = sorted(r["time"] for r in every)
    mid = times[len(times) // 2]
    late = _jsonl(capsys, "--db", str(db), "--since", str(mid))
    assert late == [r for r in every if r["time"] >= mid]
    assert _jsonl(capsys, "--db", str(db), "--limit", "3") == every[:3]
    out = tmp_path / "all.csv"
    assert (
        main(["records", "--db", str(db), "--format", "csv", "--out", str(out), "--no-progress"])
        == 0
    )
    assert len(list(csv.DictReader(io.StringIO(out.read_text())))) == len(every)
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "all.parquet"
    assert main(["records", "--db", str(db), "--format", "parquet", "--out", str(out)]) == 0
    assert pq.read_table(out).column("id").to_pylist() == [r["id"] for r in every]
    from streamfeat.endpoint import records_table

    assert records_table(db, device=device).num_rows == len(mine)
