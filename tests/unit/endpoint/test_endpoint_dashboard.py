"""The endpoint's new metrics and the dashboard's state, over the in-memory transport."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from streamfeat.endpoint import Registry, SQLiteStorage, TunnelServer
from streamfeat.endpoint._dashboard import Dashboard, histogram_buckets, quantile
from streamfeat.testing import MemoryTransportPair
from streamfeat.upload._client import Uploader, UploaderConfig
from streamfeat.upload._outbox import Outbox, OutboxConfig
from tests.unit.tunnel.tunnel_helpers import DEVICE, ENDPOINT


def _decoder(item: bytes) -> list[dict[str, object]]:
    kind = "window" if item.startswith(b"w") else "feature"
    return [{"kind": kind, "device": "dev", "ts": 1, "values": {"x": item.decode()}}]


def _sample(server: TunnelServer, name: str, labels: dict[str, str] | None = None) -> float:
    return server.metrics.registry.get_sample_value(name, labels or {}) or 0.0


async def test_metrics_and_dashboard_state_follow_a_device(tmp_path: Path) -> None:
    db = tmp_path / "ep.db"
    registry = Registry(db)
    registry.add("dev", DEVICE.public)
    server = TunnelServer(
        key=ENDPOINT, registry=registry, storage=SQLiteStorage(db), decoder=_decoder
    )
    dash = server.dashboard
    assert isinstance(dash, Dashboard)
    tasks: list[asyncio.Task[None]] = []

    async def conn() -> object:
        pair = MemoryTransportPair()
        tasks.append(asyncio.create_task(server.handle_transport(pair.b)))
        return pair.a

    ob = Outbox(tmp_path / "dev.db", OutboxConfig(batch_max_bytes=1, batch_max_age=0.0))
    up = Uploader(ob, DEVICE, UploaderConfig(url="m", endpoint_key=ENDPOINT.public), connect=conn)  # type: ignore[arg-type]
    task = asyncio.create_task(up.run())
    dash.sample(0.0)
    for item in (b"f1", b"w1", b"f2"):
        up.enqueue(item)
    assert await up.wait_drained(5)
    dash.sample(2.0)
    assert _sample(server, "streamfeat_tunnel_devices_online") == 1
    assert _sample(server, "streamfeat_tunnel_device_config_version", {"version": "0"}) == 1
    assert _sample(server, "streamfeat_tunnel_records_total", {"kind": "feature"}) == 2
    assert _sample(server, "streamfeat_tunnel_records_total", {"kind": "window"}) == 1
    stored = _sample(server, "streamfeat_tunnel_batches_total", {"result": "stored"})
    assert _sample(server, "streamfeat_tunnel_ack_seconds_count") == stored >= 1
    assert _sample(server, "streamfeat_endpoint_storage_bytes") > 0

    state = dash.state()
    assert state["online_devices"] == ["dev"]
    assert state["recent"] == ["dev"]
    assert state["registered"] == 1
    assert state["versions"] == {"0": 1}
    assert state["history"]["records_per_s"] == [1.5]  # 3 records in 2 s
    assert state["latency"]["count"] == stored
    assert state["latency"]["p50"] is not None
    assert state["storage_bytes"] > 0
    latest = dash.latest_records("dev", 2)
    assert [r["values"] for r in latest] == [{"x": "f2"}, {"x": "w1"}]

    # the routes, from loopback (no token configured)
    async with TestClient(TestServer(server.app(), host="127.0.0.1")) as client:
        for path in ("/dashboard", "/dashboard/app.js", "/dashboard/app.css"):
            r = await client.get(path)
            assert r.status == 200, path
        page = await (await client.get("/dashboard")).text()
        # every asset the page names is served by the endpoint
        assert set(re.findall(r'(?:src|href)="([^"]+)"', page)) == {
            "/dashboard/app.css", "/dashboard/app.js", "data:,",
        }  # fmt: skip
        r = await client.get("/dashboard/api/records", params={"device": "dev", "limit": "1"})
        assert (await r.json())["records"][0]["values"] == {"x": "f2"}
        assert (await client.get("/dashboard/api/records")).status == 400
        metrics = await (await client.get("/metrics")).text()
        for name in ("streamfeat_tunnel_ack_seconds_bucket", "streamfeat_tunnel_devices_online",
                     "streamfeat_endpoint_storage_bytes", "streamfeat_endpoint_admin_refusals_total"):  # fmt: skip
            assert name in metrics

        await up.aclose()
        await task
        await asyncio.gather(*tasks, return_exceptions=True)
        assert _sample(server, "streamfeat_tunnel_devices_online") == 0
        assert _sample(server, "streamfeat_tunnel_device_config_version", {"version": "0"}) == 0
        assert dash.state()["online"] == 0
    await server.aclose()


def test_histogram_buckets_and_quantiles() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    h = Histogram("h_seconds", "h", buckets=(0.1, 1.0), registry=CollectorRegistry())
    for v in (0.05, 0.05, 0.5, 5.0):
        h.observe(v)
    buckets, total = histogram_buckets(h)
    assert buckets == [(0.1, 2.0), (1.0, 1.0), (None, 1.0)]
    assert total == 4
    assert quantile(buckets, total, 0.5) == 0.1
    assert quantile(buckets, total, 0.75) == 1.0
    assert quantile(buckets, total, 0.99) is None  # beyond the last bound
    assert quantile([], 0, 0.5) is None


def test_a_clock_going_back_skips_the_sample(tmp_path: Path) -> None:
    db = tmp_path / "ep.db"
    server = TunnelServer(key=ENDPOINT, registry=Registry(db), storage=SQLiteStorage(db))
    dash = server.dashboard
    assert dash is not None
    dash.sample(10.0)
    dash.sample(5.0)
    dash.sample(12.0)
    assert list(dash.history["t"]) == [12.0]
    server.storage.close()
    server.registry.close()


class _Book:
    """The release book's public read methods, as the dashboard calls them."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail = False

    def recent_releases(self, days: float = 7.0) -> list[tuple[str, str, float]]:
        self.calls += 1
        if self.fail:
            msg = "database gone"
            raise RuntimeError(msg)
        return [("r-2", "rolling", 50.0), ("r-1", "complete", 100.0)]

    def status(self, release_id: str):  # type: ignore[no-untyped-def]
        from streamfeat.endpoint._releases import ReleaseStatus

        by_bundle = {
            "r-2": {"model-v3": {"live": 3, "pulled": 1}, "model-v2": {"announced": 2}},
            "r-1": {"model-v2": {"live": 7, "failed": 1}},
        }[release_id]
        by_status: dict[str, int] = {}
        for counts in by_bundle.values():
            for k, n in counts.items():
                by_status[k] = by_status.get(k, 0) + n
        return ReleaseStatus(release_id, "x", 0.0, by_status, by_bundle, [], None)


def test_release_versions_by_device_count_come_from_the_release_book(tmp_path: Path) -> None:
    db = tmp_path / "ep.db"
    server = TunnelServer(key=ENDPOINT, registry=Registry(db), storage=SQLiteStorage(db))
    dash = server.dashboard
    assert dash is not None
    assert dash.state()["releases"] == []  # no release book: nothing to show
    book = _Book()
    dash.use_releases(book)
    got = dash.state()["releases"]
    assert [(r["id"], r["state"], r["percent"]) for r in got] == [
        ("r-2", "rolling", 50.0),
        ("r-1", "complete", 100.0),
    ]
    assert got[0]["bundles"] == [
        {"bundle": "model-v2", "devices": 2, "by_status": {"announced": 2}},
        {"bundle": "model-v3", "devices": 4, "by_status": {"live": 3, "pulled": 1}},
    ]
    assert got[1]["by_status"] == {"live": 7, "failed": 1}
    dash.state()
    assert book.calls == 1  # read at most once per sample period, however many viewers
    dash._releases = None
    book.fail = True
    assert dash.state()["releases"] == []  # a failing book never fails the page
    server.storage.close()
    server.registry.close()
