"""A release end to end at a real endpoint on 127.0.0.1: an agent gets the announcement,
pulls, verifies, switches live, reports; a bundle signed by another key is refused (the agent
keeps its tasks file) and the release rolls back by itself; an operator rollback switches the
device back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streamfeat.agent import Agent
from streamfeat.endpoint._registry import Registry
from streamfeat.endpoint._release_routes import ReleaseRoutes
from streamfeat.endpoint._releases import ReleaseBook
from streamfeat.endpoint._server import TunnelServer
from streamfeat.endpoint._storage import SQLiteStorage
from streamfeat.release import HealthThresholds, build_archive, public_key_bytes, sign_bundle
from streamfeat.tunnel._crypto import KeyPair

BASE = """
[triggers]
two_clicks = "click click"

[windows.all_1m]
assign = "tumbling 1m"
aggregate = { n = "count" }

[upload]
records = ["window"]
batch_max_age = "50ms"
"""
BUNDLED = (
    BASE
    + """
[windows.bundled_1m]
assign = "tumbling 1m"
filter = ["click"]
aggregate = { n = "count" }
"""
)
RELEASE_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def _bundle(key: Ed25519PrivateKey, name: str) -> bytes:
    files = {"tasks.toml": BUNDLED.encode(), "notes.txt": b"a bundle"}
    return sign_bundle(build_archive(files, name=name, version="2"), key, name=name, version="2")[1]


async def _until(cond: Callable[[], bool], within: float = 10.0) -> None:
    end = asyncio.get_running_loop().time() + within
    while not cond():
        assert asyncio.get_running_loop().time() < end, "not reached in time"
        await asyncio.sleep(0.05)


class Fleet:
    def __init__(self, db: Path, url: str, ep: KeyPair, routes: ReleaseRoutes) -> None:
        self.db, self.url, self.ep, self.routes = db, url, ep, routes

    def status(self, release: str) -> dict[str, int]:
        book = ReleaseBook(self.db)
        try:
            return book.status(release).by_status
        finally:
            book.close()


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    db = tmp_path / "ep.db"
    ep = KeyPair.from_private(bytes([1]) * 32)
    server = TunnelServer(key=ep, registry=Registry(db), storage=SQLiteStorage(db))
    app = server.app()
    routes = ReleaseRoutes(server, db, poll=0.05)
    routes.install(app)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        yield Fleet(db, f"ws://127.0.0.1:{port}/v1/tunnel", ep, routes)
    finally:
        await runner.cleanup()


def _agent(fleet: Fleet, tmp_path: Path, kp: KeyPair) -> Agent:
    return Agent(
        tasks=BASE,
        store_path=tmp_path / "device.sqlite",
        endpoint_url=fleet.url,
        endpoint_public_key=fleet.ep.public,
        device_key=kp,
        device="phone",
        release_key=public_key_bytes(RELEASE_KEY),
        snapshot_every=0,
    )


def _release(fleet: Fleet, data: bytes, **health: float) -> str:
    book = ReleaseBook(fleet.db)
    try:
        book.add_bundle(data, now=0.0)
        book.create("r-1", 'default = "b"', thresholds=HealthThresholds(**health), now=0.0)  # type: ignore[arg-type]
        book.rollout("r-1", 100, ["phone"], now=0.0)
    finally:
        book.close()
    return "r-1"


async def test_an_announced_bundle_goes_live_on_the_device_and_a_rollback_brings_it_back(
    fleet: Fleet, tmp_path: Path
) -> None:
    kp = KeyPair.from_private(bytes([2]) * 32)
    Registry(fleet.db).add("phone", kp.public)
    release = _release(fleet, _bundle(RELEASE_KEY, "b"))  # announced before the device connects
    agent = _agent(fleet, tmp_path, kp)
    await agent.start()
    try:
        await _until(lambda: "bundled_1m" in agent.config.windows)
        await _until(lambda: fleet.status(release) == {"live": 1})
        assert agent.bundles.pulled_bytes > 0
        unpacked = tmp_path / "device.sqlite.bundles"
        assert any(p.name == "notes.txt" for p in unpacked.rglob("*"))
        book = ReleaseBook(fleet.db)
        book.rollback(release, "operator", now=1.0)
        book.close()  # the running endpoint pushes the rollback on the open connection
        await _until(lambda: "bundled_1m" not in agent.config.windows)
        await _until(lambda: fleet.status(release) == {"rolled_back": 1})
    finally:
        await agent.aclose()


async def test_a_bundle_signed_by_another_key_is_refused_and_the_release_rolls_back_itself(
    fleet: Fleet, tmp_path: Path
) -> None:
    kp = KeyPair.from_private(bytes([3]) * 32)
    Registry(fleet.db).add("phone", kp.public)
    release = _release(fleet, _bundle(OTHER_KEY, "b"), max_load_failures=0)
    agent = _agent(fleet, tmp_path, kp)
    await agent.start()
    try:
        await _until(lambda: agent.store.counters().get("release.refused.key", 0) == 1)
        await _until(lambda: fleet.status(release) == {"rolled_back": 1})
        assert "bundled_1m" not in agent.config.windows
        assert agent.config.text == BASE
        book = ReleaseBook(fleet.db)
        st = book.status(release)
        book.close()
        assert st.state == "rolled_back"
        assert "failed to load" in st.history[-1].reason
    finally:
        await agent.aclose()


BOOM = (
    BUNDLED
    + """
[tasks.boom]
on = ["two_clicks"]
run = "boom_task:run"
"""
)


async def test_a_bundle_whose_task_fails_is_rolled_back_from_the_devices_health_reports(
    fleet: Fleet, tmp_path: Path
) -> None:
    kp = KeyPair.from_private(bytes([4]) * 32)
    Registry(fleet.db).add("phone", kp.public)
    files = {
        "tasks.toml": BOOM.encode(),
        "boom_task.py": b"def run(ctx):\n    raise RuntimeError('boom')\n",
    }
    data = sign_bundle(
        build_archive(files, name="b", version="3"), RELEASE_KEY, name="b", version="3"
    )[1]
    release = _release(fleet, data, max_error_rate=0.5, min_reports=1)
    agent = _agent(fleet, tmp_path, kp)
    await agent.start()
    try:
        await _until(lambda: "boom" in agent.config.tasks)
        for i in range(6):  # three click pairs: the bundle's task fires and raises each time
            await agent.submit({"ts": 1_767_225_600_000 + i, "type": "click", "device": "phone"})
        await _until(lambda: agent._release_health()["task_errors"] >= 1)
        assert await agent.bundles.report_health()
        await _until(lambda: fleet.status(release) == {"rolled_back": 1})
        await _until(lambda: "boom" not in agent.config.tasks)  # back on the file before
        book = ReleaseBook(fleet.db)
        st = book.status(release)
        tiers = book.graded_devices()
        book.close()
        assert "task error rate" in st.history[-1].reason
        assert tiers == 1  # the agent graded itself at start and reported it
    finally:
        await agent.aclose()


async def test_a_pull_cut_before_a_restart_resumes_from_the_pieces_kept_in_the_store(
    fleet: Fleet, tmp_path: Path
) -> None:
    from streamfeat.agent._bundles import BundleFetcher, http_base
    from streamfeat.clock import SystemClock
    from streamfeat.endpoint._releases import announcement_body
    from streamfeat.io import Store

    kp = KeyPair.from_private(bytes([5]) * 32)
    Registry(fleet.db).add("phone", kp.public)
    files = {"tasks.toml": BUNDLED.encode(), "model.npy": bytes(range(256)) * 3000}  # ~770 KB
    data = sign_bundle(
        build_archive(files, name="b", version="4"), RELEASE_KEY, name="b", version="4"
    )[1]
    release = _release(fleet, data)
    book = ReleaseBook(fleet.db)
    bundle_id = book.load(release)[2]["b"]
    book.close()
    store = Store(tmp_path / "device.sqlite")
    cut = 300_001  # what an earlier, killed pull had kept
    store.put_state(f"release.partial.{bundle_id}.0", data[:cut])
    applied: list[tuple[int, str, str]] = []

    async def apply(version: int, text: str, source: str) -> object:
        applied.append((version, text, source))
        return object()

    fetcher = BundleFetcher(
        base_url=http_base(fleet.url), device_key=kp, endpoint_key=fleet.ep.public,
        release_key=public_key_bytes(RELEASE_KEY), store=store, folder=tmp_path / "bundles",
        apply=apply, current_text=lambda: BASE, clock=SystemClock(),
    )  # fmt: skip
    body = announcement_body(release, bundle_id, len(data))
    assert await fetcher.handle(1, body) == "live"
    assert fleet.routes.bytes_sent == len(data) - cut  # only the rest crossed the network
    assert fetcher.pulled_bytes == len(data) - cut
    assert applied == [(1, BUNDLED, f"bundle:{bundle_id[:12]}")]
    assert store.get_state(f"release.bundle.{bundle_id}") == data
    assert not store.get_state(f"release.partial.{bundle_id}.0")  # pieces forgotten once whole
    # ... and their pages given back: the device keeps one copy of the bundle, not two
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    assert store.db.execute("PRAGMA freelist_count").fetchone()[0] == 0
    size = store.db.execute("PRAGMA page_size").fetchone()[0]
    assert pages * size < len(data) + 200_000
    store.close()


async def test_a_rollback_arriving_during_the_pull_acts_after_it_and_stale_ones_are_ignored(
    fleet: Fleet, tmp_path: Path
) -> None:
    from streamfeat.agent._bundles import BundleFetcher, http_base
    from streamfeat.clock import SystemClock
    from streamfeat.endpoint._releases import announcement_body
    from streamfeat.io import Store

    kp = KeyPair.from_private(bytes([6]) * 32)
    Registry(fleet.db).add("phone", kp.public)
    data = _bundle(RELEASE_KEY, "b")
    release = _release(fleet, data)
    book = ReleaseBook(fleet.db)
    bundle_id = book.load(release)[2]["b"]
    book.close()
    store = Store(tmp_path / "device.sqlite")
    running = [BASE]

    async def apply(version: int, text: str, source: str) -> object:
        running.append(text)
        return object()

    fetcher = BundleFetcher(
        base_url=http_base(fleet.url), device_key=kp, endpoint_key=fleet.ep.public,
        release_key=public_key_bytes(RELEASE_KEY), store=store, folder=tmp_path / "bundles",
        apply=apply, current_text=lambda: running[-1], clock=SystemClock(),
    )  # fmt: skip
    go = announcement_body(release, bundle_id, len(data))
    back = announcement_body(release, bundle_id, 0, rollback=True)
    statuses = await asyncio.gather(fetcher.handle(1, go), fetcher.handle(2, back))
    assert statuses == ["live", "rolled_back"]
    assert running == [BASE, BUNDLED, BASE]  # the device ends on the file before the release
    assert await fetcher.handle(1, go) == "stale"  # an old announcement sent again
    assert running[-1] == BASE
    store.close()
