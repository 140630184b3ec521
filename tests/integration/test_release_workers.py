"""Releases and live config pushes across endpoint processes on one PostgreSQL database.

Two real endpoint processes share a real PostgreSQL server; devices are connected to each.
A ``streamfeat device config`` push and a ``streamfeat release rollout`` (commands run in this
test process, neither endpoint) reach the devices of both processes live, each config once,
through the database's downlink queue; every device pulls its bundle from the other process;
failing health reports to one process roll the release back on the devices of both.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from streamfeat.cli import main
from streamfeat.endpoint._registry import endpoint_keypair
from streamfeat.endpoint._release_store import open_release_store
from streamfeat.endpoint._releases import ANNOUNCE_MAGIC, queue_config
from streamfeat.release import authorization
from streamfeat.tunnel import KeyPair
from streamfeat.upload._client import Uploader, UploaderConfig
from streamfeat.upload._outbox import Outbox, OutboxConfig
from tests.integration.test_pg_endpoint import Proc, _register

TASKS = '[triggers]\nclick = "click"\n'


def _pull(port: int, device: KeyPair, ep_pub: bytes, bundle: str) -> bytes:
    path = f"/v1/bundles/{bundle}"
    auth = authorization(
        device.private, device.public, ep_pub, method="GET", path=path, start=0, now=time.time()
    )
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": auth})
    with urllib.request.urlopen(req, timeout=10) as r:
        return bytes(r.read())


async def _report(port: int, device: KeyPair, ep_pub: bytes, release: str) -> dict[str, str]:
    path = "/v1/report"
    auth = authorization(
        device.private, device.public, ep_pub, method="POST", path=path, now=time.time()
    )
    body = {"release": release, "status": "live", "health": {"task_runs": 50, "task_errors": 40}}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"http://127.0.0.1:{port}{path}",
            data=json.dumps(body),
            headers={"Authorization": auth},
        ) as r,
    ):
        assert r.status == 200, await r.text()
        return dict(await r.json())


def _make_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    src = tmp_path / "base"
    src.mkdir()
    (src / "tasks.toml").write_text(TASKS)
    assert main(["bundle", "keys", "--dir", str(tmp_path)]) == 0
    out = tmp_path / "base.sfb"
    key = str(tmp_path / "release.key")
    assert main(["bundle", "build", str(src), "--key", key, "--out", str(out)]) == 0
    capsys.readouterr()
    return out


def test_a_push_and_a_release_reach_the_devices_of_both_endpoint_processes(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "endpoint.key"
    ep = endpoint_keypair(key)
    devices = {f"phone-{i}": _register(pg_url, f"phone-{i}") for i in range(4)}
    bundle_file = _make_bundle(tmp_path, capsys)
    (tmp_path / "matrix.toml").write_text('default = "base"\n')
    procs = [Proc(pg_url, key), Proc(pg_url, key)]

    async def scenario() -> tuple[dict[str, list[int]], str, dict[str, float]]:
        ups: dict[str, Uploader] = {}
        tasks = []
        for i, (name, kp) in enumerate(devices.items()):
            cfg = UploaderConfig(url=procs[i % 2].url, endpoint_key=ep.public, backoff_base=0.05)
            up = Uploader(Outbox(tmp_path / f"{name}.db", OutboxConfig()), kp, cfg)
            ups[name] = up
            tasks.append(asyncio.create_task(up.run()))
        try:
            for up in ups.values():
                await asyncio.wait_for(up.connected.wait(), 20)
            # a live config push, queued by this process (what `streamfeat device config`
            # does): neither endpoint process received it
            pushed = time.monotonic()
            store = open_release_store(pg_url)
            try:
                for name in devices:
                    queue_config(store, name, 3, TASKS.encode())
            finally:
                store.close()
            latency = {}
            for name, up in ups.items():
                ev = await asyncio.wait_for(up.configs.get(), 15)
                latency[name] = time.monotonic() - pushed
                assert (ev.version, ev.body.decode()) == (3, TASKS)
            # a release to every device
            pub = (tmp_path / "release.pub").read_text().strip()
            create = ["release", "create", str(bundle_file), "--matrix"]
            create += [str(tmp_path / "matrix.toml"), "--pub", pub, "--db", pg_url]
            assert main(create) == 0
            release = capsys.readouterr().out.strip()
            assert main(["release", "rollout", release, "--percent", "100", "--db", pg_url]) == 0
            bundles = {}
            for name, up in ups.items():
                ev = await asyncio.wait_for(up.configs.get(), 15)
                assert ev.version == 4
                assert ev.body.startswith(ANNOUNCE_MAGIC)
                doc = json.loads(ev.body[len(ANNOUNCE_MAGIC) :])
                assert doc["release"] == release
                bundles[name] = doc["bundle"]
            # every device reports a failing release to process 1: the release rolls back by
            # itself there, and the rollback reaches the devices of process 0 too
            rolled = []
            for kp in devices.values():
                rolled.append(await _report(procs[1].port, kp, ep.public, release))
            assert any("task error rate" in r.get("rolled_back", "") for r in rolled)
            for up in ups.values():
                ev = await asyncio.wait_for(up.configs.get(), 15)
                assert ev.version == 5
                assert json.loads(ev.body[len(ANNOUNCE_MAGIC) :])["rollback"] is True
            await asyncio.sleep(2.5)  # two more polls of each process: nothing sent twice
            versions = {name: [up.stats.configs] for name, up in ups.items()}
        finally:
            for up in ups.values():
                await up.aclose()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert len(set(bundles.values())) == 1
        return versions, next(iter(bundles.values())), latency

    try:
        versions, bundle, latency = asyncio.run(scenario())
        # the push, the announcement and the rollback, each once
        assert versions == {name: [3] for name in devices}
        assert max(latency.values()) < 15
        data = bundle_file.read_bytes()
        for i, kp in enumerate(devices.values()):
            # pulled from the process the device is not connected to
            assert _pull(procs[(i + 1) % 2].port, kp, ep.public, bundle) == data
        assert main(["release", "status", release_id_of(pg_url), "--db", pg_url]) == 0
    finally:
        for p in procs:
            assert p.stop() == 0


def release_id_of(pg_url: str) -> str:
    from streamfeat.endpoint._releases import ReleaseBook

    book = ReleaseBook(pg_url)
    try:
        (rel,) = book.recent_releases()
    finally:
        book.close()
    return rel[0]


def test_a_version_1_database_is_upgraded_to_hold_the_release_book(pg_url: str) -> None:
    """A database made before releases lived in PostgreSQL (schema 1) gains the release tables
    on the next start, keeps its devices, and records version 2."""
    from streamfeat.endpoint import _postgres
    from streamfeat.endpoint._postgres import SCHEMA_VERSION, connect, migrate, schema_version
    from streamfeat.endpoint._releases import ReleaseBook

    conn = connect(pg_url)
    try:
        with conn.transaction():  # what a streamfeat of schema 1 created
            conn.execute("CREATE TABLE streamfeat_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            for stmt in _postgres._MIGRATIONS[0]:
                conn.execute(stmt)
            conn.execute("INSERT INTO streamfeat_meta VALUES ('schema_version', '1')")
            conn.execute("INSERT INTO devices VALUES ('old-phone', %s, 1.0, NULL)", (b"k" * 32,))
        assert schema_version(conn) == 1
        assert conn.execute("SELECT to_regclass('announcements')").fetchone()[0] is None
        assert migrate(conn) == 1
        assert schema_version(conn) == SCHEMA_VERSION == 2
        assert conn.execute("SELECT name FROM devices").fetchall() == [("old-phone",)]
    finally:
        conn.close()
    book = ReleaseBook(pg_url)
    try:
        assert book.recent_releases() == []
        assert book.announcements_after(0) == []
    finally:
        book.close()
