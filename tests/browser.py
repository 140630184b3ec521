"""A headless Chromium driven over the DevTools protocol, for the tests of HTML pages.

Only Debian's ``chromium`` and aiohttp (already a dependency) are needed: no Playwright, no
driver download. ``make test`` installs chromium when it can (``tests/install_chromium.sh``);
without it, the tests that need it skip and say so.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
]


def find_chromium() -> str | None:
    """The chromium binary: ``$STREAMFEAT_CHROMIUM``, else ``chromium`` or ``chromium-browser``."""
    env = os.environ.get("STREAMFEAT_CHROMIUM")
    if env:
        return env
    return shutil.which("chromium") or shutil.which("chromium-browser")


def need_chromium() -> str:
    """The chromium binary, or skip the test with how to get one."""
    exe = find_chromium()
    if exe is None:
        pytest.skip(
            "headless chromium not found: `make test` installs it (Debian: apt-get install -y "
            "chromium), or set STREAMFEAT_CHROMIUM to a chromium binary"
        )
    return exe


class Browser:
    """One headless chromium with one page, over the DevTools protocol.

    Args:
        offline: resolve no host name (every host but loopback addresses fails), to prove a
            page needs no network.
    """

    def __init__(self, *, offline: bool = False, width: int = 1200, height: int = 900) -> None:
        self.offline = offline
        self.size = (width, height)
        self.events: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._waiters: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        # chromium's helper processes may still write into the profile as the browser exits
        self._tmp = tempfile.TemporaryDirectory(prefix="sf-chromium-", ignore_cleanup_errors=True)
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Browser:
        exe = need_chromium()
        profile = Path(self._tmp.name)
        args = [
            exe,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={self.size[0]},{self.size[1]}",
        ]
        if self.offline:
            args.append("--host-resolver-rules=MAP * ~NOTFOUND")
        # started once per test and never waited on here: a blocking Popen is fine
        self._proc = subprocess.Popen(  # noqa: ASYNC220
            [*args, "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its helper processes are stopped with it (killpg)
        )
        port_file = profile / "DevToolsActivePort"
        for _ in range(300):
            if port_file.exists() and port_file.read_text().count("\n") >= 1:
                break
            if self._proc.poll() is not None:
                msg = f"chromium exited with {self._proc.returncode} before it listened"
                raise RuntimeError(msg)
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().splitlines()[0])
        self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://127.0.0.1:{port}/json/list") as r:
            targets = await r.json()
        page = next(t for t in targets if t.get("type") == "page")
        self._ws = await self._session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        self._reader = asyncio.create_task(self._read())
        for domain in ("Page", "Runtime", "Log", "Network"):
            await self.send(f"{domain}.enable")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if os.name == "posix":  # its helpers too, when it runs in a session of its own
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
        self._tmp.cleanup()

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            data = msg.json()
            if "id" in data:
                fut = self._waiters.pop(data["id"], None)
                if fut is not None and not fut.done():
                    fut.set_result(data)
            else:
                self.events.append(data)

    async def send(
        self, method: str, params: dict[str, Any] | None = None, within: float = 30
    ) -> dict[str, Any]:
        """Call a DevTools method; return its result.

        Raises:
            RuntimeError: the method failed.
        """
        assert self._ws is not None
        i = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[i] = fut
        await self._ws.send_json({"id": i, "method": method, "params": params or {}})
        data = await asyncio.wait_for(fut, within)
        if "error" in data:
            msg = f"{method}: {data['error']}"
            raise RuntimeError(msg)
        return data.get("result", {})

    async def goto(self, url: str, within: float = 60) -> None:
        """Open ``url`` and wait for its load event."""
        mark = len(self.events)
        await self.send("Page.navigate", {"url": url})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not any(e["method"] == "Page.loadEventFired" for e in self.events[mark:]):
            if loop.time() > deadline:
                msg = f"{url} did not load within {within} s"
                raise TimeoutError(msg)
            await asyncio.sleep(0.05)

    async def js(self, expression: str) -> Any:
        """Evaluate ``expression`` in the page (promises awaited) and return its value."""
        res = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in res:
            msg = f"page script failed: {res['exceptionDetails']}"
            raise RuntimeError(msg)
        return res["result"].get("value")

    async def wait_for(self, expression: str, within: float = 20) -> Any:
        """Poll ``expression`` until it is truthy; return its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            value = await self.js(expression)
            if value:
                return value
            if loop.time() > deadline:
                msg = f"waited {within} s for {expression}"
                raise TimeoutError(msg)
            await asyncio.sleep(0.2)

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries seen so far."""
        out = []
        for e in self.events:
            m, p = e["method"], e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(
                    " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", []))
                )
            elif m == "Runtime.exceptionThrown":
                out.append(
                    str(p.get("exceptionDetails", {}).get("exception", {}).get("description"))
                )
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(f"{p['entry'].get('text')} {p['entry'].get('url', '')}")
        return out

    def requested_urls(self) -> list[str]:
        """Every URL the page asked for since it was opened."""
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e["method"] == "Network.requestWillBeSent"
        ]

    async def screenshot(self, path: Path, *, full_page: bool = True) -> None:
        """Save a PNG of the page (the whole page, not only the viewport)."""
        if full_page:
            m = await self.send("Page.getLayoutMetrics")
            size = m.get("cssContentSize") or m["contentSize"]
            await self.send(
                "Emulation.setDeviceMetricsOverride",
                {
                    "width": int(size["width"]),
                    "height": int(size["height"]),
                    "deviceScaleFactor": 1,
                    "mobile": False,
                },
            )
        shot = await self.send("Page.captureScreenshot", {"format": "png"}, within=120)
        path.write_bytes(base64.b64decode(shot["data"]))  # noqa: ASYNC240 - one small file in a test
        if full_page:
            await self.send("Emulation.clearDeviceMetricsOverride")
