"""Delivery with real processes: kill -9 the endpoint and a device mid-stream, cut
connections; afterwards every item every device created is stored exactly once."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from streamfeat.cli import main
from streamfeat.tunnel import split_items
from tests.integration.tunnel_device_proc import item
from tests.integration.tunnel_procs import Endpoint, start_device


def provision(tmp: Path, names: list[str]) -> Path:
    db = tmp / "ep.db"
    for name in names:
        assert (
            main(
                [
                    "device",
                    "add",
                    name,
                    "--init",
                    "--db",
                    str(db),
                    "--out",
                    str(tmp / f"{name}.device.json"),
                ]
            )
            == 0
        )
    return db


def stored_items(db: Path) -> tuple[Counter[bytes], int]:
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT device, batch_id, payload FROM batches").fetchall()
    conn.close()
    keys = Counter((r[0], r[1]) for r in rows)
    assert all(v == 1 for v in keys.values())
    return Counter(it for r in rows for it in split_items(r[2])), len(rows)


def run_chaos(tmp: Path, n_devices: int, n_items: int, kills: int) -> None:
    names = [f"dev{i}" for i in range(n_devices)]
    db = provision(tmp, names)
    ep = Endpoint(db)
    port, url = ep.port, ep.url
    devs = {
        n: start_device(tmp / f"{n}.device.json", tmp / f"{n}.store.db", n_items, url)
        for n in names
    }
    for k in range(kills):
        time.sleep(0.35)
        ep.kill9()  # endpoint dies mid-stream: every connection is cut
        time.sleep(0.15)
        ep = Endpoint(db, port)
        time.sleep(0.2)
        victim = names[k % n_devices]
        devs[victim].kill()  # SIGKILL the device mid-stream, then restart it
        devs[victim].wait(10)
        devs[victim].stdout.close()  # type: ignore[union-attr]
        devs[victim] = start_device(
            tmp / f"{victim}.device.json", tmp / f"{victim}.store.db", n_items, url
        )
    for n, p in devs.items():
        out, _ = p.communicate(timeout=90)
        assert p.returncode == 0, (n, out)
    assert ep.get("/healthz")[0] == 200
    metrics = ep.get("/metrics")[1]
    assert "streamfeat_tunnel_batches_total" in metrics
    assert ep.stop() == 0  # graceful shutdown on SIGTERM
    got, _ = stored_items(db)
    expected = Counter(item(n, i) for n in names for i in range(n_items))
    assert got == expected  # count and content: nothing lost, nothing twice


def test_kill9_endpoint_and_devices_nothing_lost_nothing_doubled(tmp_path: Path) -> None:
    run_chaos(tmp_path, n_devices=3, n_items=300, kills=2)


@pytest.mark.slow
def test_soak_many_kills(tmp_path: Path) -> None:
    run_chaos(tmp_path, n_devices=6, n_items=3000, kills=12)
