"""`streamfeat train` on what a real fleet uploaded: `streamfeat simulate` (agents running the
default tasks file's EdgeRec re-rank task against its endpoint on 127.0.0.1) fills an endpoint
database, `streamfeat train --db` reads it and writes a model that loads as a `[models.NAME]`
of a tasks file and runs in a re-rank task.

The simulator's own endpoint stores the batches undecoded; `streamfeat serve` (with its
decoder) also keeps the decoded records, which the records reader reads. Both paths are
checked to give the same samples: the batches are stored again, decoded, in a second real
SQLite endpoint database through the storage API, as `serve` does."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from streamfeat.endpoint import SQLiteStorage
from streamfeat.endpoint._backend import decoder_for
from streamfeat.endpoint._records import iter_records
from streamfeat.models import load_model, parse_model_spec
from streamfeat.ranking._inputs import decode_inputs
from streamfeat.tasks import parse_tasks
from streamfeat.train import model_table, read_samples
from streamfeat.train._batches import BatchRecords
from streamfeat.tunnel._items import split_items
from tests.integration.tunnel_procs import ROOT, env


@pytest.fixture(scope="module")
def fleet_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("fleet")
    proc = subprocess.run(
        [sys.executable, "-m", "streamfeat", "simulate", "--devices", "20", "--minutes", "4",
         "--speed", "0", "--processes", "1", "--workdir", str(work), "--json"],
        capture_output=True, text=True, env=env(), cwd=ROOT, timeout=400,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["ok"]
    return work / "endpoint.sqlite"


def _decoded_copy(raw_db: Path, out: Path) -> Path:
    decode = decoder_for(None)
    src, dst = SQLiteStorage(raw_db, create=False), SQLiteStorage(out)
    try:
        batches = [
            dataclasses.replace(b, records=[r for it in split_items(b.payload) for r in decode(it)])
            for b in src.iter_batches()
        ]
        assert all(dst.store_batches(batches))
    finally:
        src.close()
        dst.close()
    return out


def test_task_records_carry_the_inputs_and_both_readers_agree(
    fleet_db: Path, tmp_path: Path
) -> None:
    decoded = _decoded_copy(fleet_db, tmp_path / "decoded.sqlite")
    rows = list(iter_records(decoded, kind="task", name="edgerec"))
    assert rows
    for r in rows[:50]:
        v = r["record"]["values"]
        feeds = decode_inputs(v["inputs"])
        assert feeds["candidates"].shape[1] == len(v["order"])
    a, stats_a = read_samples(decoded)
    b, stats_b = read_samples(BatchRecords(fleet_db))
    assert stats_a.kept == stats_b.kept > 0
    assert stats_a.clicked == stats_b.clicked > 0
    key = lambda s: (s.device, s.labels.tobytes(), s.feeds["candidates"].tobytes())  # noqa: E731
    assert sorted(map(key, a)) == sorted(map(key, b))


def test_train_writes_a_model_that_loads_and_reranks(fleet_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "trained.onnx"
    proc = subprocess.run(
        [sys.executable, "-m", "streamfeat", "train", "--db", str(fleet_db), "--out", str(out),
         "--epochs", "1", "--holdout", "0.3", "--threads", "1", "--json"],
        capture_output=True, text=True, env=env(), cwd=ROOT, timeout=400,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert "batches undecoded: decoding them" in proc.stdout
    assert any(x.startswith("epoch 1/1: ") and "held-out AUC" in x for x in lines)
    summary = json.loads(lines[-1])
    assert summary["train_samples"] > 0
    assert summary["held_out_samples"] > 0
    assert summary["export_max_diff"] < 1e-4
    assert 0.0 <= summary["auc"] <= 1.0
    assert out.stat().st_size == summary["bytes"]
    # a [models.NAME] with the inputs of builtin:edgerec-small, in a re-rank task
    model = load_model(parse_model_spec("trained", model_table(out)))
    feeds = {i.name: np.zeros((1, n, len(i.fields)), np.float32)
             for i, n in zip(model.spec.inputs, (7, 3, 2), strict=True)}  # fmt: skip
    assert model.run(feeds).shape == (7,)
    inputs = "".join(
        f'[models.trained.inputs.{n}]\nsource = "{t["source"]}"\nfields = {json.dumps(t["fields"])}\n'
        f"shape = {json.dumps(t['shape'])}\n"
        for n, t in model_table(out)["inputs"].items()
    )
    cfg = parse_tasks(f'[models.trained]\nfile = "{out}"\n{inputs}'
                      '[tasks.rr]\nkind = "edgerec"\nmodel = "trained"\n')  # fmt: skip
    assert "rr" in cfg.reranks


def test_train_refuses_a_database_without_samples(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "streamfeat", "train", "--db", str(tmp_path / "none.db"), "--out",
         str(tmp_path / "m.onnx")],
        capture_output=True, text=True, env=env(), cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "none.db" in proc.stderr
