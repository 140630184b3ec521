"""``streamfeat agent`` on stdin against a real ``streamfeat serve`` process."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson

from streamfeat.data import default_tasks_text
from streamfeat.encoders import decode_batch, index_schemas, schemas_for
from streamfeat.gen._generator import device_stream
from streamfeat.sim._demo import demo_update
from streamfeat.tasks import parse_tasks
from streamfeat.tunnel import split_items

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, stdin: bytes | None = None, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "streamfeat", *args], input=stdin, capture_output=True,
                          cwd=cwd, env=env, timeout=120, check=False)  # fmt: skip


def test_agent_reads_stdin_applies_the_endpoint_config_and_uploads_everything(
    tmp_path: Path,
) -> None:
    db = tmp_path / "endpoint.sqlite"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    serve = subprocess.Popen([sys.executable, "-m", "streamfeat", "serve", "--init", "--port", "0", "--db", str(db)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=tmp_path, env=env, text=True)  # fmt: skip
    try:
        assert serve.stdout is not None
        line = serve.stdout.readline()
        assert line.startswith("listening on "), line
        url = f"ws://127.0.0.1:{line.rsplit(':', 1)[1].strip()}/v1/tunnel"
        added = run(
            "device",
            "add",
            "d1",
            "--db",
            str(db),
            "--url",
            url,
            "--out",
            "d1.device.json",
            cwd=tmp_path,
        )
        assert added.returncode == 0, added.stderr
        assert (tmp_path / "d1.device.json").stat().st_mode & 0o777 == 0o600
        pushed = tmp_path / "v1.toml"
        pushed.write_text(demo_update(default_tasks_text()))
        config = run(
            "device", "config", "d1", str(pushed), "--version", "1", "--db", str(db), cwd=tmp_path
        )
        assert config.returncode == 0, config.stderr
        events = list(device_stream("d1", 20, 7))
        lines = (
            b"".join(orjson.dumps(e) + b"\n" for e in events) + b'{"ts": "noon", "type": "click"}\n'
        )
        agent = run("agent", "--store", "d1.sqlite", "--device-key", "d1.device.json", "--tick", "0", "--final",
                    "--drain", "20", stdin=lines, cwd=tmp_path)  # fmt: skip
        assert agent.returncode == 0, agent.stderr.decode()[-2000:]
        summary = json.loads(agent.stdout)
    finally:
        serve.terminate()
        serve.wait(20)
        if serve.stdout is not None:
            serve.stdout.close()
    assert summary["events"] == len(events)
    assert summary["quarantined"] == 1
    assert summary["config_version"] == 1
    assert summary["outbox_waiting"] == 0
    schemas = index_schemas(
        schemas_for(parse_tasks(default_tasks_text())), schemas_for(parse_tasks(pushed.read_text()))
    )
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT payload FROM batches WHERE device = 'd1'").fetchall()
    conn.close()
    stored = [
        r for (p,) in rows for item in split_items(bytes(p)) for r in decode_batch(item, schemas)
    ]
    assert len(stored) == summary["uploaded_records"] > 0
    assert {r["kind"] for r in stored} <= {"feature", "window", "task"}
    store = sqlite3.connect(tmp_path / "d1.sqlite")
    versions = store.execute(
        "SELECT version, source, status FROM agent_configs ORDER BY id"
    ).fetchall()
    store.close()
    assert versions == [(0, "local", "applied"), (1, "downlink", "applied")]
