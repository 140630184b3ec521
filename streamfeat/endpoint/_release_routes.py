"""The endpoint's release routes: bundle pulls, device reports, and live announcements.

* ``GET /v1/bundles/{id}``: the signed bundle's bytes, ``Range: bytes=N-`` honoured (206 with
  ``Content-Range``), for an active registered device authenticated by its device key
  (:mod:`streamfeat.release._auth`); never an open download. At most ``max_pulls`` pulls run at
  once: beyond that the answer is ``503`` with ``Retry-After`` (1 to 5 s, jittered), which
  devices honour, so a release to a large fleet queues instead of falling over.
* ``POST /v1/report``: a device's release status and health, and its grade figures.
* Live announcements and config pushes: a release command, ``device config`` or another
  endpoint process queues them in the database's downlink queue; this process polls it every
  ``poll`` seconds and pushes each down the device's open connections here
  (:mod:`streamfeat.endpoint._downlink`; a device not connected gets it from its stored config
  at its next connection). ``TunnelServer.push_config`` queues through the same path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import OrderedDict
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import Counter, Gauge
from prometheus_client.core import GaugeMetricFamily

from streamfeat.clock import Clock, SystemClock
from streamfeat.endpoint._downlink import Downlink
from streamfeat.endpoint._releases import ReleaseBook
from streamfeat.errors import StorageError
from streamfeat.release import AuthError, GradeReport, HealthReport, parse_authorization, verify

__all__ = ["ReleaseRoutes"]

_CHUNK = 64 * 1024


class ReleaseRoutes:
    """Release routes bound to a running endpoint.

    Args:
        server: the :class:`~streamfeat.endpoint.TunnelServer` (its key, registry, metrics
            and live sessions).
        db: the endpoint database (SQLite path or ``postgresql://`` URL).
        max_pulls: concurrent bundle pulls in this process before ``503``.
        poll: seconds between looks at the downlink queue.
        cache_bytes: bundle bytes kept in memory for pulls (each bundle read from the
            database once per process; one larger than a quarter of this is read by slices).
    """

    def __init__(
        self,
        server: Any,
        db: str | Path,
        *,
        max_pulls: int = 64,
        poll: float = 1.0,
        cache_bytes: int = 256 * 1024 * 1024,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.server = server
        self.book = ReleaseBook(db)
        if getattr(server, "dashboard", None) is not None:
            server.dashboard.use_releases(self.book)  # release versions by device count
        self.max_pulls = max_pulls
        self.poll = poll
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.pulls = 0
        self.refused: dict[str, int] = {}
        self.bytes_sent = 0
        self.cache_bytes = cache_bytes
        self._cached: OrderedDict[str, bytes] = OrderedDict()  # bundle id -> signed bytes
        self._cached_size = 0
        self.downlink = Downlink(
            self.book.store, server.live_sessions, poll=poll, clock=self.clock.monotonic
        )
        server.downlink = self.downlink  # push_config queues for the other processes too
        self._task: asyncio.Task[None] | None = None
        r = server.metrics.registry
        self._m_pulls = Gauge("streamfeat_release_pulls", "bundle pulls in flight", registry=r)
        self._m_bytes = Counter(
            "streamfeat_release_pulled_bytes", "bundle bytes sent to devices", registry=r
        )
        self._m_refused = Counter(
            "streamfeat_release_refusals", "release requests refused, by reason", ["reason"],
            registry=r,
        )  # fmt: skip
        r.register(_ReleaseCollector(self.book))

    def install(self, app: web.Application) -> None:
        """Add the routes and the announcement poller to ``app``."""
        app.router.add_get("/v1/bundles/{bundle}", self._bundle)
        app.router.add_post("/v1/report", self._report)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)

    async def _start(self, _app: web.Application) -> None:
        self._task = asyncio.create_task(self.downlink.run())

    async def _stop(self, _app: web.Application) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.server.downlink is self.downlink:
            self.server.downlink = None
        self.book.close()

    def push_pending(self) -> int:
        """Push what was queued since the last look down this process's connections."""
        return self.downlink.deliver()

    def _cache(self, bundle: str, size: int) -> bytes | None:
        """The bundle's bytes, read once and kept (bundles are immutable: the id is their
        hash), least recently used forgotten first beyond ``cache_bytes``; None when it is
        larger than a quarter of that (then pulls read it from the database by slices)."""
        if size > self.cache_bytes // 4:
            return None
        data = self.book.bundle_bytes(bundle)
        if data is None or len(data) != size:
            return None
        self._cached[bundle] = data
        self._cached_size += len(data)
        while self._cached_size > self.cache_bytes:
            _, old = self._cached.popitem(last=False)
            self._cached_size -= len(old)
        return data

    def _refuse(self, status: int, reason: str) -> web.Response:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        self._m_refused.labels(reason.split(":")[0]).inc()
        return web.Response(status=status, text=f"{reason}\n")

    def _device(self, request: web.Request, start: int) -> str:
        key, ts, mac = parse_authorization(request.headers.get("Authorization"))
        entry = self.server.registry.lookup(key)
        if entry is None or not entry.active:
            reason = "unknown or revoked device"
            raise AuthError(reason)
        verify(
            self.server.key.private,
            key,
            ts,
            mac,
            method=request.method,
            path=request.path,
            start=start,
            now=self.clock.time(),
        )
        return str(entry.name)

    async def _bundle(self, request: web.Request) -> web.StreamResponse:
        bundle = request.match_info["bundle"]
        start = _range_start(request.headers.get("Range"))
        if start is None:
            return self._refuse(416, "bad range")
        try:
            self._device(request, start)
        except AuthError as exc:
            return self._refuse(401, exc.reason)
        cached = self._cached.get(bundle)
        if cached is not None:
            self._cached.move_to_end(bundle)
        size = len(cached) if cached is not None else self.book.bundle_size(bundle)
        if size is None:
            return self._refuse(404, "unknown bundle")
        if start > size:
            return self._refuse(416, "bad range")
        if self.pulls >= self.max_pulls:
            self.refused["busy"] = self.refused.get("busy", 0) + 1
            self._m_refused.labels("busy").inc()
            return web.Response(
                status=503, text="busy\n", headers={"Retry-After": str(self.rng.randint(1, 5))}
            )
        self.pulls += 1
        self._m_pulls.inc()
        try:
            partial = start > 0
            resp = web.StreamResponse(status=206 if partial else 200)
            resp.content_length = size - start
            resp.content_type = "application/octet-stream"
            if partial:
                resp.headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
            await resp.prepare(request)
            data = cached if cached is not None else self._cache(bundle, size)
            at = start
            while at < size:
                if data is not None:
                    chunk = data[at : at + _CHUNK]
                else:  # too large to keep in memory: read it slice by slice
                    chunk = self.book.bundle_bytes(bundle, at, _CHUNK) or b""
                if not chunk:
                    break
                await resp.write(chunk)
                at += len(chunk)
                self.bytes_sent += len(chunk)
                self._m_bytes.inc(len(chunk))
            await resp.write_eof()
            return resp
        finally:
            self.pulls -= 1
            self._m_pulls.dec()

    async def _report(self, request: web.Request) -> web.Response:
        try:
            device = self._device(request, 0)
        except AuthError as exc:
            return self._refuse(401, exc.reason)
        try:
            doc = json.loads(await request.read())
            now = self.clock.time()
            out: dict[str, Any] = {}
            grade = doc.get("grade")
            if grade is not None:
                out["tier"] = self.book.record_grade(
                    device,
                    GradeReport(
                        str(grade["model"]),
                        float(grade["p50"]),
                        float(grade["p99"]),
                        int(grade["runs"]),
                    ),
                    now=now,
                )
            if "release" in doc:
                h = doc.get("health")
                health = None if h is None else HealthReport(device=device, **h)
                t = self.book.report(
                    str(doc["release"]),
                    device,
                    str(doc["status"]),
                    reason=str(doc.get("reason", "")),
                    health=health,
                    now=now,
                )
                if t is not None:
                    out["rolled_back"] = t.reason
                    self.push_pending()
        except (ValueError, KeyError, TypeError, StorageError) as exc:
            return self._refuse(400, f"bad report: {exc}")
        return web.json_response(out)


class _ReleaseCollector:
    """Release state read from the book at scrape time: devices by release and status, and
    each release's state (the releases of the last week)."""

    def __init__(self, book: ReleaseBook) -> None:
        self.book = book

    def describe(self) -> list[Any]:
        return []  # no fixed families: collected at scrape time only

    def collect(self) -> Any:
        devices = GaugeMetricFamily(
            "streamfeat_release_devices", "devices by release and rollout status",
            labels=["release", "status"],
        )  # fmt: skip
        state = GaugeMetricFamily(
            "streamfeat_release_state", "each release's rollout percent, labelled with its state",
            labels=["release", "state"],
        )  # fmt: skip
        try:
            for rel, st, percent in self.book.recent_releases():
                state.add_metric([rel, st], percent)
                for status, n in self.book.status(rel).by_status.items():
                    devices.add_metric([rel, status], n)
        except Exception:  # a scrape must not fail the endpoint: report what was read
            pass
        yield devices
        yield state


def _range_start(value: str | None) -> int | None:
    """The first byte of ``Range: bytes=N-`` (0 without a header); None when malformed."""
    if not value:
        return 0
    unit, _, spec = value.partition("=")
    first, dash, last = spec.partition("-")
    if unit.strip() != "bytes" or not dash or last.strip() or not first.strip().isdigit():
        return None
    return int(first)
