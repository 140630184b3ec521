"""The device side of a release: announcement in, bundle pulled, verified, cached, switched.

Stage one arrives as a tunnel config whose body starts with ``ANNOUNCE_MAGIC``. Stage two is
:meth:`BundleFetcher.handle`: the bundle's bytes are pulled from the endpoint over HTTP with
``Range`` (resuming from the partial bytes kept in the device store, so a pull cut at any point
goes on where it stopped, across restarts too), authenticated by the device key; ``503`` is
answered by waiting its ``Retry-After``. The whole bundle is verified against the pinned
release key, cached in the store, unpacked into a folder of its own (its task modules are
imported from there, before the device's installed packages), and handed to the agent's live
switch. Every outcome is reported to the endpoint (``pulled``, ``live``, ``failed`` with the
reason) and counted in the store (``release.refused.REASON``); a refused bundle leaves the
running tasks file in place. A rollback announcement switches back to the tasks file that ran
before the release.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from streamfeat.clock import Clock
from streamfeat.errors import BundleError
from streamfeat.io import Store
from streamfeat.release import Announcement, Pull, authorization, verify_bundle
from streamfeat.tunnel import KeyPair

__all__ = ["ANNOUNCE_MAGIC", "BundleFetcher", "http_base"]

ANNOUNCE_MAGIC = b"SFANNOUNCE1\n"  # the endpoint's streamfeat.endpoint._releases.ANNOUNCE_MAGIC
_PREVIOUS = "release.previous"  # the tasks text that ran before the first bundle
_PIECE = 256 * 1024  # a partial pull is kept in the store every this many bytes

Apply = Callable[[int, str, str], Awaitable[Any]]


def http_base(ws_url: str) -> str:
    """``ws://host:port/v1/tunnel`` -> ``http://host:port`` (``wss`` -> ``https``)."""
    scheme, _, rest = ws_url.partition("://")
    host = rest.split("/", 1)[0]
    return f"{'https' if scheme == 'wss' else 'http'}://{host}"


class BundleFetcher:
    """Pulls, verifies, caches and applies announced bundles for one agent.

    Args:
        base_url: the endpoint's HTTP base (``http_base(endpoint_url)``).
        device_key, endpoint_key: the tunnel keys (they authenticate the HTTP requests).
        release_key: the pinned Ed25519 release public key (32 bytes).
        store: the device store (partial and verified bundles, counters).
        folder: where bundles are unpacked (one sub-folder per bundle id).
        apply: the agent's live switch: ``apply(version, tasks_text, source)``; returns None
            when it refused the file.
        current_text: returns the running tasks text (kept for a rollback).
        clock: stamps the HTTP authentication.
        attempts: connections tried per pull before giving up until the next announcement.
    """

    def __init__(
        self,
        *,
        base_url: str,
        device_key: KeyPair,
        endpoint_key: bytes,
        release_key: bytes,
        store: Store,
        folder: Path,
        apply: Apply,
        current_text: Callable[[], str],
        clock: Clock,
        attempts: int = 20,
        health: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.device_key, self.endpoint_key, self.release_key = device_key, endpoint_key, release_key
        self.store, self.folder, self.apply = store, folder, apply
        self.current_text = current_text
        self.clock = clock
        self.attempts = attempts
        self.health = health  # the running release's task counters and re-rank p99
        self.pulled_bytes = 0
        self._path: str | None = None
        # one announcement at a time, in arrival order: a rollback that arrives during a pull
        # must act after it, or the device would be left on the bundle rolled back
        self._lock = asyncio.Lock()

    def _auth(self, method: str, path: str, start: int = 0) -> str:
        kp = self.device_key
        return authorization(
            kp.private, kp.public, self.endpoint_key,
            method=method, path=path, start=start, now=self.clock.time(),
        )  # fmt: skip

    async def handle(self, version: int, body: bytes) -> str:
        """Act on one announcement; return the status reported (``live``, ``failed``, ...,
        or ``stale`` for an announcement older than one already handled)."""
        async with self._lock:
            seen = int((self.store.get_state("release.version") or b"0").decode())
            if version <= seen:
                return "stale"
            status = await self._handle(version, body)
            self.store.put_state("release.version", str(version).encode())
            return status

    async def _handle(self, version: int, body: bytes) -> str:
        try:
            doc = json.loads(body[len(ANNOUNCE_MAGIC) :])
            ann = Announcement(str(doc["release"]), str(doc["bundle"]), int(doc["size"]))
        except (ValueError, KeyError, TypeError):
            self.store.incr("release.refused.announcement")
            return "failed"
        if doc.get("rollback"):
            previous = self.store.get_state(_PREVIOUS)
            if previous is not None:
                await self.apply(version, previous.decode(), f"rollback:{ann.release}")
            self.store.put_state("release.live", b"")
            await self._report(ann.release, "rolled_back")
            return "rolled_back"
        try:
            data = self.store.get_state(f"release.bundle.{ann.bundle}")
            if data is None:
                data = await self._pull(ann)
            bundle = verify_bundle(data, self.release_key)
            if bundle.id != ann.bundle:
                raise BundleError("hash", "the bundle is not the one announced")
        except BundleError as exc:
            self.store.incr(f"release.refused.{exc.reason}")
            self._forget_partial(ann.bundle)
            await self._report(ann.release, "failed", exc.reason)
            return "failed"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.store.incr("release.pull_failed")
            await self._report(ann.release, "failed", f"pull: {exc.__class__.__name__}")
            return "failed"
        self.store.put_state(f"release.bundle.{ann.bundle}", data)
        self._forget_partial(ann.bundle)
        await self._report(ann.release, "pulled")
        if self.store.get_state(_PREVIOUS) is None:
            self.store.put_state(_PREVIOUS, self.current_text().encode())
        self._unpack(bundle.id, dict(bundle.files))
        result = await self.apply(version, bundle.tasks_text, f"bundle:{bundle.id[:12]}")
        if result is None:
            self.store.incr("release.refused.tasks")
            await self._report(ann.release, "failed", "tasks")
            return "failed"
        self.store.put_state("release.live", ann.release.encode())
        await self._report(ann.release, "live", health=self._health())
        return "live"

    def _unpack(self, bundle_id: str, files: dict[str, bytes]) -> None:
        """Unpack into ``folder/ID`` and put it first on the import path (task code comes
        from the bundle, not from installed packages); forget modules of the previous one."""
        target = self.folder / bundle_id
        for rel, data in files.items():
            p = target / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        if self._path is not None:
            with contextlib.suppress(ValueError):
                sys.path.remove(self._path)
            for name, mod in list(sys.modules.items()):
                if str(getattr(mod, "__file__", "") or "").startswith(self._path):
                    del sys.modules[name]
        self._path = str(target)
        sys.path.insert(0, self._path)

    # A partial pull is kept as numbered pieces (appends, never a rewrite of what is kept), so
    # a bundle of any size costs its own size in store writes, and a cut pull resumes from the
    # last kept piece.

    def _partial(self, bundle: str) -> bytes:
        pieces, n = [], 0
        while (piece := self.store.get_state(f"release.partial.{bundle}.{n}")) is not None:
            if not piece:
                break
            pieces.append(piece)
            n += 1
        return b"".join(pieces)

    def _keep_piece(self, bundle: str, data: bytes) -> None:
        n = 0
        while self.store.get_state(f"release.partial.{bundle}.{n}"):
            n += 1
        self.store.put_state(f"release.partial.{bundle}.{n}", data)

    def _forget_partial(self, bundle: str) -> None:
        n = 0
        while self.store.get_state(f"release.partial.{bundle}.{n}"):
            self.store.put_state(f"release.partial.{bundle}.{n}", b"")
            n += 1
        if n:  # the pieces' pages go back to the filesystem: a device keeps one copy
            self.store.reclaim()

    async def _pull(self, ann: Announcement) -> bytes:
        pull = Pull(ann, bytearray(self._partial(ann.bundle)[: ann.size]))
        kept = pull.offset  # bytes already in the store's partial pieces
        path = f"/v1/bundles/{ann.bundle}"
        async with aiohttp.ClientSession() as http:
            for attempt in range(self.attempts):
                if pull.done:
                    break
                start = pull.offset
                headers = {"Authorization": self._auth("GET", path, start)}
                if start:
                    headers["Range"] = f"bytes={start}-"
                try:
                    async with http.get(self.base_url + path, headers=headers) as resp:
                        if resp.status == 503:
                            await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
                            continue
                        if resp.status == 401:
                            raise BundleError("auth", "the endpoint refused this device's key")
                        if resp.status not in (200, 206):
                            raise BundleError("format", f"endpoint answered {resp.status}")
                        at = start if resp.status == 206 else 0
                        async for chunk in resp.content.iter_chunked(64 * 1024):
                            pull.feed(at, chunk)
                            at += len(chunk)
                            self.pulled_bytes += len(chunk)
                            if pull.offset - kept >= _PIECE or pull.done:
                                self._keep_piece(ann.bundle, bytes(pull.data[kept:]))
                                kept = pull.offset
                except (aiohttp.ClientError, TimeoutError):
                    await asyncio.sleep(min(0.05 * 2**attempt, 5.0))
        return pull.result()

    def _health(self) -> dict[str, Any] | None:
        return None if self.health is None else self.health()

    async def report_health(self) -> bool:
        """Report the live release's health (task runs, errors, timeouts, re-rank p99); the
        endpoint rolls the release back by itself when a threshold is crossed."""
        live = (self.store.get_state("release.live") or b"").decode()
        if not live or self.health is None:
            return False
        return await self._report(live, "live", health=self.health())

    async def health_loop(self, every: float) -> None:
        """Report health every ``every`` seconds while a release is live here."""
        while True:
            await asyncio.sleep(every)
            await self.report_health()

    async def grade_and_report(self, hardware: str, run: Callable[[], Any]) -> str | None:
        """Run the grading benchmark (off the loop) when ``hardware`` is new here, and report
        it; return the tier the endpoint gave, or None."""
        if (self.store.get_state("release.graded") or b"").decode() == hardware:
            return None
        report = await asyncio.to_thread(run)
        grade = {"model": report.model, "p50": report.infer_p50_ms,
                 "p99": report.infer_p99_ms, "runs": report.runs}  # fmt: skip
        answer = await self._post({"grade": grade})
        if answer is None:
            return None
        self.store.put_state("release.graded", hardware.encode())
        return str(answer.get("tier")) if answer.get("tier") else None

    async def _report(
        self, release: str, status: str, reason: str = "", *, health: dict[str, Any] | None = None
    ) -> bool:
        """Tell the endpoint (best effort: a report lost is sent again with the next one)."""
        doc: dict[str, Any] = {"release": release, "status": status, "reason": reason}
        if health is not None:
            doc["health"] = health
        return await self._post(doc) is not None

    async def _post(self, doc: dict[str, Any]) -> dict[str, Any] | None:
        body = json.dumps(doc).encode()
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    self.base_url + "/v1/report",
                    data=body,
                    headers={"Authorization": self._auth("POST", "/v1/report")},
                ) as resp,
            ):
                if resp.status == 200:
                    answer: dict[str, Any] = await resp.json()
                    return answer
        return None
