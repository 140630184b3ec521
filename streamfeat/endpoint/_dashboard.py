"""``GET /dashboard``: a live page of the endpoint's fleet, served by the endpoint itself.

The page (``dashboard/index.html``, ``app.js``, ``app.css``, package data) polls
``/dashboard/api/state`` every 2 s and draws its charts as plain SVG; it loads nothing from
anywhere else. The state comes from the endpoint's own metrics and connections: a sampler task
reads the counters every ``every`` seconds into bounded ring buffers (the last ``keep``
samples), so "over time" costs a few kilobytes and no database query. The latest records of a
device come from the storage (read-only, in a worker thread). Release versions by device count
come from the endpoint's release book, through its public read methods only
(``recent_releases``, ``status``), at most once per sample period. Who may see any of it:
:mod:`streamfeat.endpoint._admin`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = ["Dashboard"]

_log = logging.getLogger("streamfeat.endpoint")
MAX_RELEASES = 8  # the newest releases the page shows

_ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
_NO_STORE = {"Cache-Control": "no-store"}


def _load_assets() -> dict[str, bytes]:
    base = resources.files("streamfeat.endpoint").joinpath("dashboard")
    return {name: base.joinpath(name).read_bytes() for name in _ASSETS}


def _total(metric: Any, suffix: str = "_total") -> float:
    """Sum of a metric's samples named ``name + suffix`` over all its labels."""
    total = 0.0
    for fam in metric.collect():
        for s in fam.samples:
            if s.name.endswith(suffix):
                total += s.value
    return total


def histogram_buckets(metric: Any) -> tuple[list[tuple[float | None, float]], float]:
    """A prometheus Histogram as ``[(upper bound or None for +Inf, count in bucket)]``, total."""
    cumulative: list[tuple[float, float]] = []
    for fam in metric.collect():
        for s in fam.samples:
            if s.name.endswith("_bucket"):
                cumulative.append((float(s.labels["le"]), s.value))
    cumulative.sort()
    out: list[tuple[float | None, float]] = []
    prev = 0.0
    for le, c in cumulative:
        out.append((None if math.isinf(le) else le, c - prev))
        prev = c
    return out, prev


def quantile(buckets: list[tuple[float | None, float]], total: float, q: float) -> float | None:
    """The upper bound of the bucket holding the ``q`` quantile (None when empty or in +Inf)."""
    if total <= 0:
        return None
    need, seen = q * total, 0.0
    for le, n in buckets:
        seen += n
        if seen >= need:
            return le
    return None


class Dashboard:
    """The dashboard routes and their sampler, for one :class:`TunnelServer`.

    Args:
        server: the endpoint (its metrics, registry, storage and live connections).
        every: seconds between samples.
        keep: samples kept (900 x 2 s = the last 30 minutes).
        records: ``(device, limit) -> rows`` for the latest records of a device (blocking;
            run in a worker thread), or None to read them from ``server.storage`` (SQLite or
            PostgreSQL, :func:`~streamfeat.endpoint._records.iter_records`).
    """

    def __init__(
        self,
        server: Any,
        *,
        every: float = 2.0,
        keep: int = 900,
        records: Callable[[str, int], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.server = server
        self.every = every
        self.history: dict[str, deque[float]] = {
            k: deque(maxlen=keep) for k in ("t", "online", "batches_per_s", "records_per_s")
        }
        self._last: tuple[float, float, float] | None = None
        self._records = records
        self._assets = _load_assets()
        self._task: asyncio.Task[None] | None = None
        self._book: Any = None
        self._releases: tuple[float, list[dict[str, Any]]] | None = None

    def use_releases(self, book: Any) -> None:
        """Show the releases kept in ``book`` (a ``ReleaseBook``; the endpoint's release routes
        hand theirs over). Only its public read methods are called, on the event loop, as the
        release routes call it."""
        self._book = book
        self._releases = None

    # -- sampling ----------------------------------------------------------------------------

    def sample(self, now: float) -> None:
        """Take one sample of the counters at time ``now`` (seconds)."""
        m = self.server.metrics
        batches = _total(m.batches)
        records = _total(m.records)
        online = len(self.online_devices())
        if self._last is not None:
            t0, b0, r0 = self._last
            dt = now - t0
            if dt <= 0:  # a clock that went back: skip rather than divide by it
                return
            h = self.history
            h["t"].append(now)
            h["online"].append(online)
            h["batches_per_s"].append((batches - b0) / dt)
            h["records_per_s"].append((records - r0) / dt)
        self._last = (now, batches, records)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.sample(loop.time())
            await asyncio.sleep(self.every)

    async def start(self, _app: web.Application | None = None) -> None:
        """Start the sampler (an ``on_startup`` hook)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, _app: web.Application | None = None) -> None:
        """Stop the sampler (an ``on_cleanup`` hook)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- state -------------------------------------------------------------------------------

    def online_devices(self) -> list[str]:
        """Devices with at least one open, authenticated connection."""
        return sorted(d for d, sessions in self.server._authenticated.items() if d and sessions)

    def state(self) -> dict[str, Any]:
        """Everything the page shows, JSON-ready."""
        srv, m = self.server, self.server.metrics
        online = self.online_devices()
        devices = srv.registry.list()
        names = [d.name for d in devices]
        versions = Counter(str(srv.device_versions.get(d, 0)) for d in online)
        buckets, count = histogram_buckets(m.ack_seconds)
        refusals: dict[str, float] = {}
        for fam in m.refusals.collect():
            for s in fam.samples:
                if s.name.endswith("_total"):
                    refusals[s.labels["reason"]] = s.value
        return {
            "online": len(online),
            "online_devices": online,
            "registered": sum(1 for d in devices if d.active),
            "devices": sorted(names, key=lambda n: (n not in online, n)),
            # devices by their latest upload, newest first (the page shows the first's records)
            "recent": sorted(srv.last_batch, key=lambda d: -srv.last_batch[d])[:50],
            "history": {k: list(v) for k, v in self.history.items()},
            "latency": {
                "buckets": buckets,
                "count": count,
                "p50": quantile(buckets, count, 0.5),
                "p99": quantile(buckets, count, 0.99),
            },
            "refusals": refusals,
            "versions": dict(sorted(versions.items(), key=lambda kv: int(kv[0]))),
            "releases": self.releases(),
            "storage_bytes": self.storage_bytes(),
            "counters": {
                "open_connections": _total(m.connections, ""),
                "handshakes": _total(m.handshakes),
                "batches_stored": m.stored._value.get(),
                "duplicates": m.duplicates._value.get(),
                "records": _total(m.records),
                "decode_errors": _total(m.decode_errors),
                "configs_sent": _total(m.configs),
            },
        }

    def releases(self) -> list[dict[str, Any]]:
        """The newest releases with their devices by bundle and status, newest first.

        Each is ``{"id", "state", "percent", "by_status": {status: devices}, "bundles":
        [{"bundle": name, "devices": n, "by_status": {...}}]}``: per bundle (a release version)
        the devices the release sent it to, by their reported status (``announced``,
        ``pulled``, ``live``, ``failed``, ``rolled_back``). Read at most once per sample period;
        a release book that fails to answer shows nothing rather than failing the page.
        """
        if self._book is None:
            return []
        now = time.monotonic()
        if self._releases is not None and now - self._releases[0] < self.every:
            return self._releases[1]
        out: list[dict[str, Any]] = []
        try:
            for rid, state, percent in self._book.recent_releases()[:MAX_RELEASES]:
                st = self._book.status(rid)
                bundles = [
                    {"bundle": name, "devices": sum(counts.values()), "by_status": dict(counts)}
                    for name, counts in sorted(st.by_bundle.items())
                ]
                out.append({
                    "id": rid, "state": state, "percent": percent,
                    "by_status": dict(st.by_status), "bundles": bundles,
                })  # fmt: skip
        except Exception:  # the release book is another part's: never fail the page for it
            _log.warning("dashboard: reading the release book failed", exc_info=True)
            out = []
        self._releases = (now, out)
        return out

    def storage_bytes(self) -> int | None:
        """The storage's size on disk (the SQLite file and its WAL), if it has a path."""
        size = getattr(self.server.storage, "size_bytes", None)
        if callable(size):
            return int(size())
        path = getattr(self.server.storage, "path", None)
        if path is None:
            return None
        total = 0
        for p in (Path(path), Path(f"{path}-wal")):
            with contextlib.suppress(OSError):
                total += p.stat().st_size
        return total

    def latest_records(self, device: str, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` stored records of ``device`` (blocking)."""
        if self._records is not None:
            return self._records(device, limit)
        from streamfeat.endpoint._records import iter_records

        storage = self.server.storage
        # an SQLiteStorage is read through its file, a PostgresStorage through its URL
        if not any(hasattr(storage, a) for a in ("iter_records", "path", "url")):
            return []
        out = []
        for row in iter_records(storage, device=device, limit=limit):
            rec = row["record"]
            out.append({
                "received": row["received"], "kind": row["kind"], "name": row["name"],
                "time": row["time"],
                "values": rec.get("values", rec) if isinstance(rec, dict) else rec,
            })  # fmt: skip
        return out

    # -- routes ------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """``/dashboard``, its assets and its JSON API; the sampler runs with the app."""
        app.router.add_get("/dashboard", self._page)
        app.router.add_get("/dashboard/app.js", self._asset)
        app.router.add_get("/dashboard/app.css", self._asset)
        app.router.add_get("/dashboard/api/state", self._state)
        app.router.add_get("/dashboard/api/records", self._latest)
        app.on_startup.append(self.start)
        app.on_cleanup.append(self.stop)

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self._assets["index.html"], content_type="text/html", charset="utf-8"
        )

    async def _asset(self, request: web.Request) -> web.Response:
        name = request.path.rsplit("/", 1)[1]
        ctype = _ASSETS[name].split(";")[0]
        return web.Response(body=self._assets[name], content_type=ctype, charset="utf-8")

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state(), headers=_NO_STORE)

    async def _latest(self, request: web.Request) -> web.Response:
        device = request.query.get("device", "")
        try:
            limit = max(1, min(200, int(request.query.get("limit", "20"))))
        except ValueError:
            return web.json_response({"error": "limit must be an integer"}, status=400)
        if not device:
            return web.json_response({"error": "device is required"}, status=400)
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(None, self.latest_records, device, limit)
        return web.json_response({"device": device, "records": rows}, headers=_NO_STORE)
