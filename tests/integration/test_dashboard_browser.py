"""The endpoint dashboard in headless Chromium: it loads, shows a running simulation's fleet,
updates, has no console errors, loads nothing from elsewhere; and refuses without credentials."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.browser import Browser, need_chromium
from tests.integration.tunnel_procs import ROOT, Endpoint, env

TOKEN = "dashboard-test-token-0123456789"


def _get(url: str, headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


async def test_dashboard_shows_a_running_fleet(tmp_path: Path) -> None:
    need_chromium()
    db = tmp_path / "ep.db"
    ep = Endpoint(db)
    # for the docs' screenshot the fleet runs long enough to still be online when it is taken
    minutes = "14" if os.environ.get("STREAMFEAT_DASHBOARD_SHOT") else "6"
    sim = subprocess.Popen(  # noqa: ASYNC220 - started once; waited for after the browser closed
        [sys.executable, "-m", "streamfeat", "simulate", "--server", ep.url, "--server-db", str(db),
         "--devices", "4", "--minutes", minutes, "--speed", "6", "--processes", "1", "--json",
         "--release", "50@1,100@4", "--release-bundle-mb", "0.1",
         "--workdir", str(tmp_path / "sim")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(), cwd=ROOT,
    )  # fmt: skip
    try:
        async with Browser(width=1300, height=1000) as b:
            await b.goto(ep.http + "/dashboard")
            await b.wait_for("Number(document.body.dataset.updates || 0) >= 1")
            online = await b.wait_for(
                "Number(document.getElementById('t-online').textContent) || 0", within=150
            )
            assert online >= 1
            first = await b.js("Number(document.body.dataset.updates)")
            await b.wait_for(f"Number(document.body.dataset.updates) >= {first + 2}", within=90)
            # a device is chosen and its latest decoded records are listed
            rows = await b.wait_for(
                "document.querySelectorAll('#records tbody tr').length", within=150
            )
            assert rows >= 1
            kinds = await b.js(
                "[...document.querySelectorAll('#records tbody tr td:nth-child(2)')].map(t => t.textContent)"
            )
            assert set(kinds) <= {"feature", "window", "task", "trigger", "late"}
            await b.wait_for("document.querySelectorAll('#c-online polyline').length", within=90)
            await b.wait_for(
                "document.querySelectorAll('#c-rates polyline').length == 2", within=90
            )
            options = await b.js("document.getElementById('device').options.length")
            assert options == 1 + 4
            # release versions by device count: the simulator's staged release, live
            live = await b.wait_for(
                "Number(document.querySelector('#releases tbody tr td:nth-child(7)')"
                "?.textContent) || 0",
                within=150,
            )
            assert 1 <= live <= 4
            row = await b.js(
                "[...document.querySelectorAll('#releases tbody tr td')].map(t => t.textContent)"
            )
            assert row[0] == "r-sim"
            counts = [int(x) for x in row[4:9]]
            assert sum(counts) <= 4  # devices the release sent the bundle to, by status
            bars = await b.js("document.querySelectorAll('#c-releases rect').length")
            assert bars == 1
            if os.environ.get("STREAMFEAT_DASHBOARD_SHOT"):
                await asyncio.sleep(40)  # for the docs: some history on the charts
            await b.screenshot(tmp_path / "dashboard.png", full_page=True)
            assert b.console_errors() == []
            assert all(u.startswith(ep.http) for u in b.requested_urls()), b.requested_urls()
    finally:
        try:
            sim.wait(300)
        finally:
            assert ep.stop() == 0
    if shot := os.environ.get("STREAMFEAT_DASHBOARD_SHOT"):
        shutil.copy(tmp_path / "dashboard.png", shot)


def test_dashboard_and_metrics_refuse_without_the_token(tmp_path: Path) -> None:
    token_file = tmp_path / "admin.token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    ep = Endpoint(tmp_path / "ep.db", extra=["--admin-token-file", str(token_file)])
    try:
        for path in ("/dashboard", "/dashboard/api/state", "/dashboard/app.js", "/metrics"):
            assert _get(ep.http + path) == 401, path
            assert _get(ep.http + path, {"Authorization": "Bearer wrong-token-0123456789"}) == 401
            assert _get(ep.http + path, {"Authorization": f"Bearer {TOKEN}"}) == 200, path
        assert _get(ep.http + "/healthz") == 200  # open to everyone
    finally:
        assert ep.stop() == 0


def test_serve_refuses_a_token_file_others_can_read(tmp_path: Path) -> None:
    token_file = tmp_path / "admin.token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o644)
    proc = subprocess.run(
        [sys.executable, "-m", "streamfeat", "serve", "--init", "--port", "0", "--db", str(tmp_path / "ep.db"),
         "--admin-token-file", str(token_file)],
        capture_output=True, text=True, env=env(), cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "chmod 600" in proc.stderr
    assert "Traceback" not in proc.stderr
